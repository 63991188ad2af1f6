//go:build tamago

package netstack

import "net"

// Install makes s the socket implementation of TamaGo's net package, so
// that net.Listen, net.Dial, net/http and the rest use it.
func (s *Stack) Install() {
	net.SocketFunc = s.SocketFunc
}
