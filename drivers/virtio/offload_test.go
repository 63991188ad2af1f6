package virtio

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"fornax/drivers/virtio/virtiotest"
)

// TestOffloads: the table reads the same both ways, and a set to keep
// says what it lacks in offload='s words.
func TestOffloads(t *testing.T) {
	if got := strings.Join(AllOffloads.Names(), ","); got != "csum,mrg,rxtso,txtso" {
		t.Errorf("names %q", got)
	}
	for _, name := range AllOffloads.Names() {
		o := OffloadNamed(name)
		if o == 0 || len(o.Names()) != 1 || o.Names()[0] != name {
			t.Errorf("%q: %v", name, o.Names())
		}
		if got := offloadsOf(o.features()); got != o {
			t.Errorf("%q: offloadsOf(%#x) = %v", name, o.features(), got.Names())
		}
	}
	if OffloadNamed("mrg-rxbuf") != 0 || OffloadNamed("") != 0 {
		t.Error("an unknown name names an offload")
	}
	if f := AllOffloads.features(); f != FeatureNetCsum|FeatureNetGuestCsum|FeatureNetMrgRxbuf|FeatureNetGuestTSO4|FeatureNetHostTSO4 {
		t.Errorf("features %#x", f)
	}
	// Either checksum bit is csum: no TSO listed without it.
	if o := offloadsOf(FeatureNetGuestCsum | FeatureNetHostTSO4); o != OffloadCsum|OffloadTxTSO {
		t.Errorf("GUEST_CSUM, HOST_TSO4: %v", o.Names())
	}
	for _, c := range []struct {
		keep Offloads
		err  string
	}{
		{0, ""},
		{AllOffloads, ""},
		{OffloadCsum | OffloadMrg | OffloadRxTSO, ""},
		{OffloadCsum | OffloadTxTSO, ""},
		{OffloadCsum | OffloadRxTSO, "rxtso needs csum and mrg"},
		{OffloadMrg | OffloadRxTSO, "rxtso needs csum and mrg"},
		{OffloadTxTSO, "txtso needs csum"},
	} {
		err := c.keep.Check()
		if got := fmt.Sprint(err); (err == nil) != (c.err == "") || err != nil && got != c.err {
			t.Errorf("%v: %v, want %q", c.keep.Names(), err, c.err)
		}
	}
}

const (
	base    = FeatureVersion1 | FeatureNetMAC
	csum    = FeatureNetCsum | FeatureNetGuestCsum
	mrg     = FeatureNetMrgRxbuf
	rxTSO   = FeatureNetGuestTSO4
	txTSO   = FeatureNetHostTSO4
	offered = base | csum | mrg | rxTSO | txTSO
)

// TestDecline: offloads can be declined one by one, and one that needs
// a declined one (§5.1.3.1) goes with it.
func TestDecline(t *testing.T) {
	for _, c := range []struct {
		decline Offloads
		want    uint64
	}{
		{0, offered},
		{OffloadTxTSO, offered &^ txTSO},
		{OffloadRxTSO, offered &^ rxTSO},
		{OffloadRxTSO | OffloadTxTSO, base | csum | mrg},
		{OffloadMrg, base | csum | txTSO}, // rxtso needs mrg
		{OffloadCsum, base | mrg},         // both TSOs need csum
		{AllOffloads, base},
	} {
		n, dev := newNetOpts(t, func(n *Net) { n.Decline = c.decline })
		if f := dev.DriverFeatures(); f != c.want {
			t.Errorf("decline %v: features %#x, want %#x", c.decline.Names(), f, c.want)
		}
		if o := n.Offloads(); o != offloadsOf(c.want) || o&c.decline != 0 {
			t.Errorf("decline %v: Offloads() %v", c.decline.Names(), o.Names())
		}
	}
}

// TestWantFeatures: a feature bit declined alone (as a device that does
// not offer it) takes what needs it along, and no more.
func TestWantFeatures(t *testing.T) {
	for _, c := range []struct {
		decline, want uint64
	}{
		{FeatureNetGuestCsum, offered &^ (FeatureNetGuestCsum | rxTSO)},
		{FeatureNetCsum, offered &^ (FeatureNetCsum | txTSO)},
		{mrg, offered &^ (mrg | rxTSO)},
		{csum | mrg | rxTSO | txTSO, base},
	} {
		if f := wantFeatures(offered, c.decline, 256); f != c.want {
			t.Errorf("decline %#x: features %#x, want %#x", c.decline, f, c.want)
		}
		if f := wantFeatures(offered&^c.decline, 0, 256); f != c.want {
			t.Errorf("not offered %#x: features %#x, want %#x", c.decline, f, c.want)
		}
	}
}

// TestDeclineAll: with every offload declined, nothing the device
// writes in a header is believed.
func TestDeclineAll(t *testing.T) {
	n2, dev2 := newNetOpts(t, func(n *Net) { n.Decline = AllOffloads })
	if f := dev2.DriverFeatures(); f != FeatureVersion1|FeatureNetMAC {
		t.Errorf("all declined: driver features %#x", f)
	}
	// A device that sets the flags anyway gets no word taken for it.
	dev2.InjectHdr(frame(1, 100), virtiotest.Hdr{Flags: NetHdrFDataValid})
	if r := receiveInfo(t, n2); r.checksumOK || !bytes.Equal(r.b, frame(1, 100)) {
		t.Errorf("all declined, DATA_VALID set: checksumOK %v", r.checksumOK)
	}
	// Nor a GSO frame it never agreed to.
	dev2.InjectHdr(frame(2, 100), virtiotest.Hdr{GSOType: NetHdrGSOTCPv4})
	dev2.Inject(frame(3, 100))
	if r := receiveInfo(t, n2); !bytes.Equal(r.b, frame(3, 100)) {
		t.Errorf("after a GSO frame without GUEST_TSO4: got %q", r.b[:8])
	}
	if s := n2.Stats(); s.RxErrors != 1 {
		t.Errorf("RxErrors %d, want 1", s.RxErrors)
	}
}
