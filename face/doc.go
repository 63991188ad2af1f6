// Package face is a node's HTTP face: read-only views of the cluster for
// the tools an operator already runs (docs/guide.md, "The HTTP face").
//
//	GET /            one HTML page: the cluster table, live, and its events
//	GET /metrics     Prometheus text exposition format, version 0.0.4
//	GET /sd          Prometheus http_sd_configs: one target group per online member
//	GET /v1/self     this node, JSON
//	GET /v1/members  this node and its peers, JSON, in node_id order
//	GET /v1/events   /cluster/events as Server-Sent Events
//
// The face shows what the /cluster tree shows and changes nothing: every
// other method is refused with 405. It reads the node through its public
// API and its tree, as a 9P client would, so it holds the node's lock no
// longer than a read of the tree does.
//
// Limits (docs/protocol.md §10): at most Config.MaxConns connections, at
// most Config.MaxPerSource from one address (a newcomer over either is
// closed at once and counted); request headers of at most 4 KiB, read
// within 5 s; a connection idle for 30 s is closed; every response but
// /v1/events is built whole before it is sent and bounded by the table's
// size; an event stream whose reader stops reading for 10 s is closed.
package face
