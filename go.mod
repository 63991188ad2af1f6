module fornax

go 1.26.0

tool github.com/usbarmory/tamago/cmd/tamago

require (
	9fans.net/go v0.0.8-0.20250307142834-96bdba94b63f
	github.com/prometheus/common v0.74.0
	github.com/usbarmory/tamago v1.26.0
	golang.org/x/net v0.63.0
	golang.org/x/sys v0.50.0
	gvisor.dev/gvisor v0.0.0-20250911055229-61a46406f068
)

require (
	github.com/google/btree v1.1.2 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/pandatix/go-abnf v0.5.5 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	golang.org/x/time v0.7.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
