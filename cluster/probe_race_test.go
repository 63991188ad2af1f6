//go:build race

package cluster

// raceEnabled: the race detector slows the simulation about tenfold, so
// long simulations run a shorter form.
const raceEnabled = true
