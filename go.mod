module fornax

go 1.26.0

tool github.com/usbarmory/tamago/cmd/tamago

require (
	github.com/usbarmory/tamago v1.26.0
	golang.org/x/sys v0.26.0
	gvisor.dev/gvisor v0.0.0-20250911055229-61a46406f068
)

require (
	github.com/google/btree v1.1.2 // indirect
	golang.org/x/time v0.7.0 // indirect
)
