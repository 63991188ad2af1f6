package cluster

import (
	"fmt"
	"slices"
	"sync"
)

// Containers is the registry of a node's running containers. Applications
// add and remove names; the node advertises the count and lists the names
// in /cluster/self/containers/. The zero value is empty and ready to use;
// it is safe for concurrent use.
type Containers struct {
	mu    sync.Mutex
	names map[string]struct{}
}

// Add registers a running container. Names follow the node name rule
// (1–63 of [A-Za-z0-9._-]) and may not be "." or "..".
func (c *Containers) Add(name string) error {
	if !ValidName(name) || name == "." || name == ".." {
		return fmt.Errorf("bad container name: %q", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.names[name]; ok {
		return fmt.Errorf("container %q already registered", name)
	}
	if len(c.names) >= maxContainers {
		return fmt.Errorf("too many containers: limit %d", maxContainers)
	}
	if c.names == nil {
		c.names = make(map[string]struct{})
	}
	c.names[name] = struct{}{}
	return nil
}

// Remove unregisters a container; removing an unknown name does nothing.
func (c *Containers) Remove(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.names, name)
}

// List returns the registered names, sorted.
func (c *Containers) List() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := make([]string, 0, len(c.names))
	for n := range c.names {
		l = append(l, n)
	}
	slices.Sort(l)
	return l
}

// Len returns the number of registered containers.
func (c *Containers) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.names)
}
