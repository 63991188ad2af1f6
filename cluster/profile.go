package cluster

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// A Profile is a set of timings (docs/protocol.md §4.4). Every node of a
// cluster must run the same one: a node judges its peers' silence by its
// own thresholds, so a "default" node among "fast" ones is suspect
// between each of its messages.
type Profile struct {
	Name                                           string
	Interval, SuspectAfter, DeadAfter, RemoveAfter time.Duration
}

// Profiles are the named profiles, "default" first.
var Profiles = []Profile{
	{"default", DefaultInterval, DefaultSuspectAfter, DefaultDeadAfter, DefaultRemoveAfter},
	// fast: failure detection in 6 s, for five times the datagrams.
	{"fast", time.Second, 3 * time.Second, 6 * time.Second, 12 * time.Second},
}

// LookupProfile returns the profile called name.
func LookupProfile(name string) (Profile, error) {
	i := slices.IndexFunc(Profiles, func(p Profile) bool { return p.Name == name })
	if i < 0 {
		var names []string
		for _, p := range Profiles {
			names = append(names, p.Name)
		}
		return Profile{}, fmt.Errorf("unknown cluster profile %q: want one of %s", name, strings.Join(names, ", "))
	}
	return Profiles[i], nil
}

// Apply sets c's timings to p's.
func (p Profile) Apply(c *Config) {
	c.Interval, c.SuspectAfter, c.DeadAfter, c.RemoveAfter = p.Interval, p.SuspectAfter, p.DeadAfter, p.RemoveAfter
}
