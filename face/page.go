package face

import _ "embed"

// index is the page at /: the cluster table from /v1/members, fetched
// again at each event of /v1/events and every 5 s (for HEARD), and the
// events scrolling below. No external assets: it works from a VM.
//
//go:embed index.html
var index []byte
