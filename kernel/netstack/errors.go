package netstack

import "gvisor.dev/gvisor/pkg/tcpip"

// tcpipError is a gVisor tcpip.Error as a Go error. gVisor's errors are
// not Go errors (no Error method); its text is the tcpip.Error's String,
// e.g. "port is in use".
type tcpipError struct{ err tcpip.Error }

func (e *tcpipError) Error() string { return e.err.String() }

// asError turns a gVisor tcpip.Error into an error with the same text;
// nil stays nil. Every tcpip.Error the package hands out goes through it.
func asError(err tcpip.Error) error {
	if err == nil {
		return nil
	}
	return &tcpipError{err}
}
