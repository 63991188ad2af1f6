// Package virtio implements a virtio-net driver for modern (version 2)
// virtio-mmio devices, following "Virtual I/O Device (VIRTIO) Version 1.2"
// (virtio-v1.2). It moves Ethernet frames and knows no IP: its frame
// interface is NIC, and the gVisor link endpoint over it lives next to
// the stack, in kernel/netstack/virtiolink.
//
// The driver reaches the device only through two small interfaces, Regs
// (the register window) and Memory (DMA-able memory at known addresses),
// so everything but the tamago-tagged MMIO and DMA glue tests on the host
// against a simulated device (package virtiotest).
//
// Byte order: virtio 1.x structures are little-endian (virtio-v1.2 §1.4);
// ring indices are accessed as native 32-bit words, which assumes a
// little-endian CPU (amd64).
package virtio

// virtio-mmio register offsets (virtio-v1.2 §4.2.2, Table 4.1).
const (
	RegMagic             = 0x000 // "virt"
	RegVersion           = 0x004 // 2 for modern devices
	RegDeviceID          = 0x008 // §5: 1 = network card
	RegVendorID          = 0x00c
	RegDeviceFeatures    = 0x010
	RegDeviceFeaturesSel = 0x014
	RegDriverFeatures    = 0x020
	RegDriverFeaturesSel = 0x024
	RegQueueSel          = 0x030
	RegQueueNumMax       = 0x034
	RegQueueNum          = 0x038
	RegQueueReady        = 0x044
	RegQueueNotify       = 0x050
	RegInterruptStatus   = 0x060
	RegInterruptACK      = 0x064
	RegStatus            = 0x070
	RegQueueDescLow      = 0x080
	RegQueueDescHigh     = 0x084
	RegQueueDriverLow    = 0x090
	RegQueueDriverHigh   = 0x094
	RegQueueDeviceLow    = 0x0a0
	RegQueueDeviceHigh   = 0x0a4
	RegConfigGeneration  = 0x0fc
	RegConfig            = 0x100 // device-specific configuration space
)

// Register values (virtio-v1.2 §4.2.2).
const (
	MagicValue   = 0x74726976 // "virt", little-endian
	VersionValue = 2          // modern (non-legacy) interface
	DeviceIDNet  = 1          // virtio-v1.2 §5
)

// Device status bits (virtio-v1.2 §2.1).
const (
	StatusAcknowledge      = 1
	StatusDriver           = 2
	StatusDriverOK         = 4
	StatusFeaturesOK       = 8
	StatusDeviceNeedsReset = 64
	StatusFailed           = 128
)

// InterruptStatus bits (virtio-v1.2 §4.2.2).
const (
	IntUsedBuffer   = 1 << 0 // a virtqueue's used ring was updated
	IntConfigChange = 1 << 1 // configuration space changed
)

// Feature bits (virtio-v1.2 §5.1.3, §6).
const (
	// VIRTIO_NET_F_CSUM: the device fills in a checksum the driver left
	// partial (NEEDS_CSUM, csum_start, csum_offset).
	FeatureNetCsum = 1 << 0
	// VIRTIO_NET_F_GUEST_CSUM: the device may deliver frames whose
	// checksums it checked (DATA_VALID) or left partial (NEEDS_CSUM).
	FeatureNetGuestCsum = 1 << 1
	// VIRTIO_NET_F_MTU: config space holds the device's maximum MTU,
	// which the driver must not exceed (§5.1.4.2); 1450 on a VXLAN
	// overlay (QEMU: virtio-net-device,host_mtu=1450).
	FeatureNetMTU = 1 << 3
	FeatureNetMAC = 1 << 5 // VIRTIO_NET_F_MAC: config space holds the MAC
	// VIRTIO_NET_F_GUEST_TSO4: the device may deliver TCP/IPv4 segments
	// of up to 64 KiB (needs GUEST_CSUM, §5.1.3.1).
	FeatureNetGuestTSO4 = 1 << 7
	// VIRTIO_NET_F_HOST_TSO4: the device cuts a TCP/IPv4 frame of up to
	// 64 KiB into segments (needs CSUM, §5.1.3.1).
	FeatureNetHostTSO4 = 1 << 11
	// VIRTIO_NET_F_MRG_RXBUF: a frame may span several receive buffers,
	// num_buffers in its header saying how many (§5.1.6.3).
	FeatureNetMrgRxbuf = 1 << 15
	FeatureVersion1    = 1 << 32 // VIRTIO_F_VERSION_1: modern device
)

// virtio_net_hdr fields (virtio-v1.2 §5.1.6).
const (
	netHdrFlagsOff      = 0
	netHdrGSOTypeOff    = 1
	netHdrHdrLenOff     = 2
	netHdrGSOSizeOff    = 4
	netHdrCsumStartOff  = 6
	netHdrCsumOffsetOff = 8
	netHdrNumBuffersOff = 10

	NetHdrFNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	NetHdrFDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID

	NetHdrGSONone  = 0    // VIRTIO_NET_HDR_GSO_NONE
	NetHdrGSOTCPv4 = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	NetHdrGSOECN   = 0x80 // VIRTIO_NET_HDR_GSO_ECN, or'ed in
)

// Regs is the virtio-mmio register window of one device (virtio-v1.2
// §4.2.2). Offsets are relative to the device's base address.
type Regs interface {
	Read32(off uint32) uint32
	Write32(off uint32, v uint32)
}

// ByteReader is implemented by register windows that can do 8-bit
// accesses; the driver uses it for the MAC in the device configuration
// space, which virtio-v1.2 §4.2.2.2 wants read with 8-bit accesses.
// Without it the driver falls back to aligned 32-bit reads (which QEMU
// accepts).
type ByteReader interface {
	Read8(off uint32) uint8
}

// struct virtio_net_config (virtio-v1.2 §5.1.4): mac[6], status le16,
// max_virtqueue_pairs le16, mtu le16, ...
const (
	netCfgMTUOff = 10
)

// HalfReader is implemented by register windows that can do 16-bit
// accesses, which virtio-v1.2 §4.2.2.2 wants for the configuration
// space's 16-bit fields (the mtu). Without it the driver reads the
// aligned 32-bit word around the field (which QEMU accepts).
type HalfReader interface {
	Read16(off uint32) uint16
}

// Memory hands out memory the device can reach by DMA.
//
// Alloc returns size bytes aligned to align (a power of two) at
// guest-physical address addr, and a slice over the same bytes. The
// memory must stay valid and at the same address for the life of the
// device, need not be zeroed, and is never freed. A short or nil buf
// means out of memory.
type Memory interface {
	Alloc(size, align int) (addr uint64, buf []byte)
}
