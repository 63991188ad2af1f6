// Package ninep serves a tree of synthetic files over 9P2000, so that
// another machine can mount Fornax's name space: Linux with
//
//	mount -t 9p -o trans=tcp,port=564,version=9p2000 10.0.0.2 /mnt/fornax
//
// or any Plan 9 style client (9fans.net/go/plan9/client, plan9port's 9p).
//
// # Dialect
//
// The server speaks plain 9P2000 (intro(5) of Plan 9's fourth edition),
// not 9P2000.u nor 9P2000.L: a Tversion asking for any of them is
// answered "9P2000", anything else "unknown". Plain 9P2000 is enough
// for v9fs to walk, stat, read and write synthetic files; the
// extensions add numeric owners, symbolic links, devices, locks and
// Linux attributes, none of which a tree of made-up files has, and each
// would be more code to keep safe on a port open to the LAN.
//
// # Semantics
//
// The tree is a file.Server (fs/file) of absolute slash-separated
// names, "/" the root, as fs/ns.Namespace takes them. One open is
// one snapshot: Topen calls ReadFile once and the reads of that fid
// serve offsets of that content; a read past its end returns 0 bytes. Directories are read the same
// way: Topen lists them, and reads return whole stat entries, restarting
// at offset 0 or going on from where the last read ended (other offsets
// are refused, as read(5) has it). Stat, a walk and a directory open
// read no file: every file's length is 0, as in Plan 9's /proc, since
// its content is made when it is read; modes are 0555|DMDIR for
// directories, 0444 for files and 0664 for writable ones. A file's qid
// version is the tree's when the tree is a file.Versioner (the cluster
// tree: a hash of a small file's content, a new number at every look
// for one that changes with time), 0 otherwise and for directories;
// Topen asks for it before it reads the file, so a caching client never
// keeps old content under a new version.
//
// Opens follow open(5): OTRUNC needs write permission (and is otherwise
// ignored), writing or truncating a directory is refused, OEXEC opens
// only directories (no file has an execute bit), ORCLOSE and Tcreate
// are refused. Error texts are Plan 9's ("unknown fid", "interrupted",
// "malformed stat buffer"), never a Go library's (budget.go, ename).
//
// A file is writable when the server is configured so (Config.Writable;
// off by default) and the tree says so: through a method
// Writable(name string) bool when it has one (WritableFS), otherwise
// when the file is named "ctl", the convention of Fornax's trees for
// the files that take commands. Each Twrite, whatever its offset, hands
// its data to WriteFile as one write (one control message); an error
// comes back as Rerror with the error's text.
//
// A tree that is also a file.Streamer may serve files whose reads block
// until something happens (an event log). When OpenStream accepts a
// name, an open for reading of that file is a stream: each Tread calls
// the stream's read function, with a context cancelled by a Tflush of
// that request, a Tclunk of the fid or the end of the connection, and
// the stream's close function runs once the fid is gone and no read
// runs. When OpenStream refuses with an error wrapping file.ErrNotStream
// (told by errors.Is, never by its text), the file is a snapshot file as
// above; any other error fails the open.
//
// # Streams
//
// A stream read waits until there is data, then returns what is there
// (for /cluster/events, whole lines): it never returns 0 bytes while the
// stream is open, as Plan 9's event files (/dev/kprint, /net/.../listen)
// do not. A 0 is the end of the file to 9fans.net/go's Fid.Read, go-p9p,
// lionkov's go9p, knusbaum's go9p and Plan 9's cat, so `tail -f`-like
// following (a bufio.Scanner on the fid) needs reads that wait.
//
// Linux's v9fs is the exception: it sends Tread after Tread until the
// caller's buffer is full or a read returns 0 bytes, so with reads that
// only wait, `cat` would print nothing until 4 KiB (or 128 KiB) of
// events had come. v9fs announces itself by asking for 9P2000.L in
// Tversion (its default; the server answers 9P2000 and v9fs goes on in
// it). In such a session the burst rule holds: the read after one that
// returned data does not wait, it returns what has come since or 0
// bytes, which ends v9fs's loop (read(2) returns the lines) and not the
// stream; the read after a 0 waits again. A Linux mount made with
// version=9p2000 asks for plain 9P2000 and gets reads that wait.
//
// Qid paths are a 64-bit FNV-1a hash of the file's name: stable for as
// long as the name exists, unique in practice, and free of any table.
//
// # Limits
//
// The port is open to whoever reaches it, so nothing a client sends can
// crash the server or make it keep unbounded memory (see Config for the
// numbers). Serve admits at most MaxConns connections in all and
// MaxPerSource from one address (admit.go); when a newcomer finds either
// full, the idle connection that has been silent longest gives way (one
// that has no session yet first), and only when none is idle is the
// newcomer closed at once. A connection with a stream read pending is
// not idle, and counts in its address's share like any other. Per
// connection: MaxFids fids, msize at most 64 KiB (and at least 256), at
// most MaxPending stream reads waiting, at most MaxSnapshot bytes of open
// snapshots, walks of at most 16 names. A connection silent for
// MsgTimeout before Tversion and Tattach are done, or for IdleTimeout
// after (since its last message and its last reply) while nothing of it
// is pending, or that sends part of a message and then nothing for
// MsgTimeout, or that does not take replies for WriteTimeout, is
// closed. There is no authentication (Tauth is refused): see
// docs/protocol.md §10.
//
// # Files
//
// server.go holds the configuration, the accept loop and each
// connection's reading and replying; admit.go decides which connections
// are served; handlers.go answers each message;
// budget.go holds the error texts and a connection's request budget
// (1/16 of the time past a 50 ms burst: handle makes it wait);
// fids.go keeps a connection's fids; streams.go opens streams, runs
// their reads and flushes them.
package ninep
