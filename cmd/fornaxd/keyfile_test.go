package main

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte{0xab}, 32)
	text := hex.EncodeToString(raw)
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode) // past the umask
		return p
	}

	key, warning, err := readKeyFile(write("good", text+"\n", 0o600))
	if err != nil || !bytes.Equal(key, raw) || warning != "" {
		t.Errorf("good key: %x, %q, %v", key, warning, err)
	}
	// Upper case is a key file too (docs/protocol.md §9.1).
	if key, _, err := readKeyFile(write("upper", strings.ToUpper(text), 0o600)); err != nil || !bytes.Equal(key, raw) {
		t.Errorf("upper case: %x, %v", key, err)
	}
	p := write("open", text+"\n", 0o644)
	if _, warning, err := readKeyFile(p); err != nil || !strings.Contains(warning, "may be read by others (mode 0644)") || !strings.Contains(warning, "chmod 600 "+p) {
		t.Errorf("mode 0644: warning %q, %v", warning, err)
	}

	for _, c := range []struct {
		path, want string
	}{
		{filepath.Join(dir, "missing"), "no such file (make one with: openssl rand -hex 32 > "},
		{dir, "not a regular file"},
		{write("short", text[:62]+"\n", 0o600), "bad key: 62 characters, want 64 hex digits"},
		{write("nothex", strings.Repeat("g", 64), 0o600), "bad key: not hex digits"},
		{write("long", strings.Repeat("a", keyFileMax+1), 0o600), "longer than 4096 bytes"},
	} {
		_, _, err := readKeyFile(c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", filepath.Base(c.path), err, c.want)
			continue
		}
		// Errors never quote the file: it may be a key.
		if strings.Contains(err.Error(), text[:16]) || strings.Contains(err.Error(), "gggggggg") {
			t.Errorf("%s: the error quotes the file: %v", filepath.Base(c.path), err)
		}
	}
}
