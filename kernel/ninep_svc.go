//go:build tamago

package main

import (
	"errors"
	"fmt"

	"fornax/fs/ninep"
)

func init() {
	services = append(services, service{30, "9p", startNineP})
}

// NinePPort is 9P's port (IANA's 9pfs).
const NinePPort = 564

// startNineP serves the whole name space over 9P2000 on tcp/564,
// read-only unless the command line says 9p=rw (docs/guide.md, 9P).
func startNineP(s *system) error {
	if s.net == nil {
		return errors.New("needs the network (ip= on the command line)")
	}
	l, err := s.net.Listen("tcp4", fmt.Sprintf(":%d", NinePPort))
	if err != nil {
		return fmt.Errorf("listen tcp :%d: %w", NinePPort, err)
	}
	srv := ninep.New(s.space, ninep.Config{Writable: s.cfg.NinePWritable})
	s.ninep = srv
	go func() {
		err := srv.Serve(l)
		s.kern.Logf("9p: stopped: %v", err)
	}()
	mode := "read-only"
	if s.cfg.NinePWritable {
		mode = "read-write (9p=rw)"
	}
	fmt.Fprintf(s.con, "9p: serving the name space on tcp/%d, %s\n", NinePPort, mode)
	return nil
}
