//go:build tamago && cluster

package main

import (
	"errors"
	"fmt"
	"net"

	board "fornax/board/qemu_amd64"
	"fornax/cluster"
	"fornax/face"
)

func init() {
	services = append(services, service{40, "http", startFace})
}

// clusterNode is what the cluster service leaves for the HTTP face,
// which starts after 9P (whose counters it shows).
type clusterNode struct {
	node    *cluster.Node
	profile string
	res     func() cluster.Resources
}

var theNode clusterNode // set by startCluster

// startFace serves the HTTP face (face, docs/guide.md "The HTTP face")
// on tcp/9711, or http=<port>; http=off turns it off.
func startFace(s *system) error {
	if s.cfg.HTTPOff {
		return nil
	}
	if theNode.node == nil {
		return errors.New("needs the cluster")
	}
	cols := []face.Collector{face.MachineCollector(board.Uptime, theNode.res), netCollector(s)}
	if s.ninep != nil {
		cols = append(cols, face.NinePCollector(&s.ninep.Stats))
	}
	f, err := face.New(face.Config{
		Node: theNode.node, Addr: s.cfg.Addr.Addr(), Port: s.cfg.HTTPPort,
		Profile: theNode.profile, Resources: theNode.res, Collectors: cols,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp4", f.Addr())
	if err != nil {
		return fmt.Errorf("listen tcp %s: %w", f.Addr(), err)
	}
	go func() {
		err := f.Serve(l)
		s.kern.Logf("http: stopped: %v", err)
	}()
	fmt.Fprintf(s.con, "http: serving /metrics, /sd, /v1/members and a live page on tcp%s\n", f.Addr())
	return nil
}

// netCollector reports the stack's, the driver's and the small
// services' counters (/net/ifconfig, /net/virtio, /net/services).
func netCollector(s *system) face.Collector {
	services := face.KeyValues("fornax_net_service_", "A counter of /net/services.", func() ([]byte, error) {
		return []byte(s.svc.Stats.String()), nil
	})
	return func(m *face.Metrics) {
		in := s.net.Info()
		m.Counter("fornax_net_receive_packets_total", "Packets received by the stack.", float64(in.RxPackets))
		m.Counter("fornax_net_receive_bytes_total", "Bytes received by the stack.", float64(in.RxBytes))
		m.Counter("fornax_net_transmit_packets_total", "Packets sent by the stack.", float64(in.TxPackets))
		m.Counter("fornax_net_transmit_bytes_total", "Bytes sent by the stack.", float64(in.TxBytes))
		m.Counter("fornax_net_receive_dropped_total", "Inbound packets the stack dropped, by reason.", float64(in.RxBadSource), "reason", "bad_source")
		m.Counter("fornax_net_receive_dropped_total", "Inbound packets the stack dropped, by reason.", float64(in.RxBcastEcho), "reason", "broadcast_echo")
		m.Counter("fornax_net_receive_dropped_total", "Inbound packets the stack dropped, by reason.", float64(in.RxDropped), "reason", "other")
		m.Counter("fornax_net_transmit_errors_total", "Packets the stack failed to send.", float64(in.TxErrors))
		m.Gauge("fornax_net_tcp_established", "TCP connections established now.", float64(in.TCPEstablished))
		d := s.nic.Stats()
		m.Counter("fornax_virtio_receive_errors_total", "Malformed frames and broken receive-queue entries.", float64(d.RxErrors))
		m.Counter("fornax_virtio_transmit_drops_total", "Frames dropped for want of a free descriptor.", float64(d.TxDrops))
		m.Counter("fornax_virtio_transmit_errors_total", "Frames refused and broken transmit-queue entries.", float64(d.TxErrors))
		m.Counter("fornax_virtio_interrupts_total", "Device interrupts with a cause.", float64(d.Interrupts))
		m.Counter("fornax_virtio_resets_total", "Device resets after a queue broke.", float64(d.Resets))
		services(m)
	}
}
