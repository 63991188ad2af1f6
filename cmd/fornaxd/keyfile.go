package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"fornax/cluster"
)

// keyFileMax bounds what is read of a key file: a key file holds 65
// bytes, so anything longer is the wrong file.
const keyFileMax = 4096

// readKeyFile reads the cluster key from path (docs/protocol.md §9.1: 64
// hex digits and a newline). Its errors never quote the file. warning is
// set when others than the owner may read the file.
func readKeyFile(path string) (key []byte, warning string, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("-key-file %s: no such file (make one with: openssl rand -hex 32 > %s)", path, path)
		}
		return nil, "", fmt.Errorf("-key-file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("-key-file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("-key-file %s: not a regular file", path)
	}
	text, err := io.ReadAll(io.LimitReader(f, keyFileMax+1))
	defer clear(text)
	if err != nil {
		return nil, "", fmt.Errorf("-key-file: %w", err)
	}
	if len(text) > keyFileMax {
		return nil, "", fmt.Errorf("-key-file %s: longer than %d bytes: a key file holds 64 hex digits (make one with: openssl rand -hex 32)", path, keyFileMax)
	}
	key, err = cluster.ParseKey(text)
	if err != nil {
		return nil, "", fmt.Errorf("-key-file %s: %w", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		warning = fmt.Sprintf("-key-file %s may be read by others (mode %04o): whoever reads it can join and steer the cluster (chmod 600 %s)", path, perm, path)
	}
	return key, warning, nil
}
