package ninep

// fid is a client's handle on a file.
type fid struct {
	path   string
	qid    Qid
	open   bool
	mode   uint8   // of the open, OREAD...OEXEC
	data   []byte  // snapshot of an open file
	dir    []byte  // packed stat entries of an open directory
	dirAt  uint64  // offset of the directory read that ends at dirPos
	dirPos int     // next entry's offset in dir
	cost   int     // bytes of data or dir, counted in conn.snap
	st     *stream // of an open stream file
}

// newFid checks that n may name a new fid.
func (c *conn) newFid(n uint32) error {
	if _, ok := c.fids[n]; ok {
		return errFidInUse
	}
	if len(c.fids) >= c.s.cfg.MaxFids {
		return errTooMany
	}
	return nil
}

// clunkAll forgets every fid, as the end of a session does.
func (c *conn) clunkAll() {
	for n := range c.fids {
		c.clunk(n)
	}
}

// clunk forgets the fid n, giving back its snapshot and closing its
// stream.
func (c *conn) clunk(n uint32) error {
	fd, ok := c.fids[n]
	if !ok {
		return errNoFid
	}
	delete(c.fids, n)
	c.snap -= fd.cost
	if fd.st != nil {
		c.closeStream(fd.st)
	}
	return nil
}

// hold counts n bytes of snapshot taken by fd against MaxSnapshot.
func (c *conn) hold(fd *fid, n int) {
	fd.cost = n
	c.snap += n
}
