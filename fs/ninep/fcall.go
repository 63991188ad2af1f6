package ninep

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Message types of 9P2000 (intro(5)).
const (
	Tversion = 100 + iota
	Rversion
	Tauth
	Rauth
	Tattach
	Rattach
	Terror // not a message: the slot of Rerror's request
	Rerror
	Tflush
	Rflush
	Twalk
	Rwalk
	Topen
	Ropen
	Tcreate
	Rcreate
	Tread
	Rread
	Twrite
	Rwrite
	Tclunk
	Rclunk
	Tremove
	Rremove
	Tstat
	Rstat
	Twstat
	Rwstat
)

// Protocol constants.
const (
	NoTag    = 0xFFFF     // the tag of Tversion
	NoFid    = 0xFFFFFFFF // no fid (Tattach's afid without authentication)
	MaxWElem = 16         // most names in one Twalk (walk(5))
	IOHdrSz  = 24         // room for a Tread/Twrite header within msize

	QTDIR  = 0x80       // qid type of a directory
	QTFILE = 0x00       // qid type of a plain file
	DMDIR  = 0x80000000 // mode bit of a directory

	OREAD   = 0    // open for read
	OWRITE  = 1    // open for write
	ORDWR   = 2    // open for read and write
	OEXEC   = 3    // open for execute (read, for us)
	OTRUNC  = 0x10 // truncate (ignored: synthetic files)
	ORCLOSE = 0x40 // remove on clunk (refused)
)

// headerSize is size[4] type[1] tag[2].
const headerSize = 7

// Qid is a file's identity on the server.
type Qid struct {
	Type uint8
	Vers uint32
	Path uint64
}

// Fcall is one 9P2000 message, request or reply; which fields mean
// something depends on Type (intro(5)).
type Fcall struct {
	Type    uint8
	Tag     uint16
	Fid     uint32
	Msize   uint32   // Tversion, Rversion
	Version string   // Tversion, Rversion
	Oldtag  uint16   // Tflush
	Ename   string   // Rerror
	Qid     Qid      // Rattach, Ropen, Rcreate, Rauth
	Iounit  uint32   // Ropen, Rcreate
	Afid    uint32   // Tauth, Tattach
	Uname   string   // Tauth, Tattach
	Aname   string   // Tauth, Tattach
	Perm    uint32   // Tcreate
	Name    string   // Tcreate
	Mode    uint8    // Topen, Tcreate
	Newfid  uint32   // Twalk
	Wname   []string // Twalk
	Wqid    []Qid    // Rwalk
	Offset  uint64   // Tread, Twrite
	Count   uint32   // Tread
	Data    []byte   // Twrite, Rread
	Stat    []byte   // Rstat, Twstat: one packed stat entry
}

var errShort = errors.New("9p: short message")

// decoder reads the fields of a message in order; the first overrun
// sets err and makes every later read return zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errShort
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u8() uint8 {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if p := d.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) str() string { return string(d.take(int(d.u16()))) }

func (d *decoder) qid() Qid {
	return Qid{Type: d.u8(), Vers: d.u32(), Path: d.u64()}
}

// Decode parses one whole message, size field included. It never keeps
// b: the Fcall's byte fields are copies.
func Decode(b []byte) (*Fcall, error) {
	if len(b) < headerSize {
		return nil, errShort
	}
	if size := binary.LittleEndian.Uint32(b); uint64(size) != uint64(len(b)) {
		return nil, fmt.Errorf("9p: size field %d, message %d bytes", size, len(b))
	}
	d := &decoder{b: b[4:]}
	f := &Fcall{Type: d.u8(), Tag: d.u16()}
	switch f.Type {
	case Tversion, Rversion:
		f.Msize = d.u32()
		f.Version = d.str()
	case Tauth:
		f.Afid = d.u32()
		f.Uname = d.str()
		f.Aname = d.str()
	case Rauth, Rattach:
		f.Qid = d.qid()
	case Tattach:
		f.Fid = d.u32()
		f.Afid = d.u32()
		f.Uname = d.str()
		f.Aname = d.str()
	case Rerror:
		f.Ename = d.str()
	case Tflush:
		f.Oldtag = d.u16()
	case Rflush, Rclunk, Rremove, Rwstat:
	case Twalk:
		f.Fid = d.u32()
		f.Newfid = d.u32()
		n := int(d.u16())
		if n > MaxWElem {
			return nil, fmt.Errorf("9p: walk of %d names (most %d)", n, MaxWElem)
		}
		for range n {
			f.Wname = append(f.Wname, d.str())
		}
	case Rwalk:
		n := int(d.u16())
		if n > MaxWElem {
			return nil, fmt.Errorf("9p: walk of %d qids (most %d)", n, MaxWElem)
		}
		for range n {
			f.Wqid = append(f.Wqid, d.qid())
		}
	case Topen:
		f.Fid = d.u32()
		f.Mode = d.u8()
	case Ropen, Rcreate:
		f.Qid = d.qid()
		f.Iounit = d.u32()
	case Tcreate:
		f.Fid = d.u32()
		f.Name = d.str()
		f.Perm = d.u32()
		f.Mode = d.u8()
	case Tread:
		f.Fid = d.u32()
		f.Offset = d.u64()
		f.Count = d.u32()
	case Rread:
		f.Data = clone(d.take(int(d.u32())))
	case Twrite:
		f.Fid = d.u32()
		f.Offset = d.u64()
		f.Data = clone(d.take(int(d.u32())))
	case Rwrite:
		f.Count = d.u32()
	case Tclunk, Tremove, Tstat:
		f.Fid = d.u32()
	case Rstat:
		f.Stat = clone(d.take(int(d.u16())))
	case Twstat:
		f.Fid = d.u32()
		f.Stat = clone(d.take(int(d.u16())))
	default:
		return nil, fmt.Errorf("9p: unknown message type %d", f.Type)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("9p: %d bytes after the message", len(d.b))
	}
	return f, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// encoder appends fields to a buffer.
type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) { e.b = binary.LittleEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }

// str appends s, cut to the 65535 bytes its length field can tell.
func (e *encoder) str(s string) {
	if len(s) > 0xFFFF {
		s = s[:0xFFFF]
	}
	e.u16(uint16(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) qid(q Qid) {
	e.u8(q.Type)
	e.u32(q.Vers)
	e.u64(q.Path)
}

// Append appends the encoding of f to b. Fields too long for their
// length fields are cut (callers keep within msize anyway).
func (f *Fcall) Append(b []byte) []byte {
	start := len(b)
	e := &encoder{b: b}
	e.u32(0) // size, set below
	e.u8(f.Type)
	e.u16(f.Tag)
	switch f.Type {
	case Tversion, Rversion:
		e.u32(f.Msize)
		e.str(f.Version)
	case Tauth:
		e.u32(f.Afid)
		e.str(f.Uname)
		e.str(f.Aname)
	case Rauth, Rattach:
		e.qid(f.Qid)
	case Tattach:
		e.u32(f.Fid)
		e.u32(f.Afid)
		e.str(f.Uname)
		e.str(f.Aname)
	case Rerror:
		e.str(f.Ename)
	case Tflush:
		e.u16(f.Oldtag)
	case Twalk:
		e.u32(f.Fid)
		e.u32(f.Newfid)
		e.u16(uint16(len(f.Wname)))
		for _, n := range f.Wname {
			e.str(n)
		}
	case Rwalk:
		e.u16(uint16(len(f.Wqid)))
		for _, q := range f.Wqid {
			e.qid(q)
		}
	case Topen:
		e.u32(f.Fid)
		e.u8(f.Mode)
	case Ropen, Rcreate:
		e.qid(f.Qid)
		e.u32(f.Iounit)
	case Tcreate:
		e.u32(f.Fid)
		e.str(f.Name)
		e.u32(f.Perm)
		e.u8(f.Mode)
	case Tread:
		e.u32(f.Fid)
		e.u64(f.Offset)
		e.u32(f.Count)
	case Rread:
		e.u32(uint32(len(f.Data)))
		e.b = append(e.b, f.Data...)
	case Twrite:
		e.u32(f.Fid)
		e.u64(f.Offset)
		e.u32(uint32(len(f.Data)))
		e.b = append(e.b, f.Data...)
	case Rwrite:
		e.u32(f.Count)
	case Tclunk, Tremove, Tstat:
		e.u32(f.Fid)
	case Rstat:
		e.u16(uint16(len(f.Stat)))
		e.b = append(e.b, f.Stat...)
	case Twstat:
		e.u32(f.Fid)
		e.u16(uint16(len(f.Stat)))
		e.b = append(e.b, f.Stat...)
	}
	binary.LittleEndian.PutUint32(e.b[start:], uint32(len(e.b)-start))
	return e.b
}

// Dir is the part of a stat entry (stat(5)) the server fills in.
type Dir struct {
	Qid    Qid
	Mode   uint32
	Atime  uint32
	Mtime  uint32
	Length uint64
	Name   string
	Uid    string
	Gid    string
	Muid   string
}

// Append appends d's packed stat entry, its own size field first.
func (d *Dir) Append(b []byte) []byte {
	start := len(b)
	e := &encoder{b: b}
	e.u16(0) // size, set below
	e.u16(0) // type
	e.u32(0) // dev
	e.qid(d.Qid)
	e.u32(d.Mode)
	e.u32(d.Atime)
	e.u32(d.Mtime)
	e.u64(d.Length)
	e.str(d.Name)
	e.str(d.Uid)
	e.str(d.Gid)
	e.str(d.Muid)
	binary.LittleEndian.PutUint16(e.b[start:], uint16(len(e.b)-start-2))
	return e.b
}

// UnpackDir parses one packed stat entry, as Twstat carries.
func UnpackDir(b []byte) (typ uint16, dev uint32, d Dir, err error) {
	dec := &decoder{b: b}
	size := int(dec.u16())
	if dec.err == nil && size != len(dec.b) {
		return 0, 0, Dir{}, errors.New("9p: bad stat size")
	}
	typ = dec.u16()
	dev = dec.u32()
	d.Qid = dec.qid()
	d.Mode = dec.u32()
	d.Atime = dec.u32()
	d.Mtime = dec.u32()
	d.Length = dec.u64()
	d.Name = dec.str()
	d.Uid = dec.str()
	d.Gid = dec.str()
	d.Muid = dec.str()
	if dec.err == nil && len(dec.b) != 0 {
		dec.err = errors.New("9p: bytes after the stat entry")
	}
	return typ, dev, d, dec.err
}
