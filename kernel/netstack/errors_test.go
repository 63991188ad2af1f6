package netstack

import (
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
)

func TestAsError(t *testing.T) {
	if err := asError(nil); err != nil {
		t.Errorf("asError(nil) = %#v, want nil", err)
	}
	terr := &tcpip.ErrPortInUse{}
	if err := asError(terr); err == nil || err.Error() != terr.String() {
		t.Errorf("asError(%T) = %v, want %q", terr, err, terr.String())
	}
}
