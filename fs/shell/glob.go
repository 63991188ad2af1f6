package shell

import (
	"fmt"
	"path"
	"strings"
)

// hasMeta reports whether a path is a pattern for path.Match.
func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// maxMatches bounds the paths the patterns of one command line expand
// to, and the paths a pattern keeps at each of its elements: a pattern
// such as /*/*/*/* over a large tree costs the console at most
// maxMatches directory listings an element, not one of everything.
const maxMatches = 1024

// expand replaces each pattern among paths by the paths it matches, in
// order, leaving other paths as they are. A pattern that matches nothing
// is an error, `no match: PATTERN`, and is dropped; so is one that would
// take the line past maxMatches paths, `too many matches: PATTERN`.
func (s *Shell) expand(paths []string) ([]string, []error) {
	var (
		out  []string
		errs []error
	)
	for _, p := range paths {
		if !hasMeta(p) {
			out = append(out, p)
			continue
		}
		m, err := s.glob(p, maxMatches-len(out))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, m...)
	}
	return out, errs
}

// glob returns the existing paths that pattern matches, element by
// element with path.Match over the directories' listings, in listing
// order. The matches keep the pattern's form: absolute or not, and a
// trailing "/". More than limit matches, or than limit paths kept at
// any element, is an error.
func (s *Shell) glob(pattern string, limit int) ([]string, error) {
	tooMany := fmt.Errorf("too many matches: %s", pattern)
	lead, trail := "", ""
	if strings.HasPrefix(pattern, "/") {
		lead = "/"
	}
	if strings.HasSuffix(pattern, "/") {
		trail = "/"
	}
	found := []string{""} // matches so far, relative to the root
	for elem := range strings.SplitSeq(pattern, "/") {
		if elem == "" {
			continue
		}
		var next []string
		if !hasMeta(elem) {
			for _, f := range found {
				next = append(next, path.Join(f, elem))
			}
			found = next // no longer than before
			continue
		}
		if _, err := path.Match(elem, ""); err != nil {
			return nil, fmt.Errorf("%s: %w", pattern, err)
		}
		for _, f := range found {
			names, err := s.fsys.ReadDir("/" + f)
			if err != nil {
				continue // not a directory: nothing below it matches
			}
			for _, name := range names {
				name = strings.TrimSuffix(name, "/")
				if ok, _ := path.Match(elem, name); ok {
					if len(next) >= limit {
						return nil, tooMany
					}
					next = append(next, path.Join(f, name))
				}
			}
		}
		found = next
		if len(found) == 0 {
			break
		}
	}
	var out []string
	for _, f := range found {
		// Literal elements after a pattern need not exist.
		if isDir, err := s.fsys.Stat("/" + f); err == nil && (trail == "" || isDir) {
			out = append(out, lead+f+trail)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no match: %s", pattern)
	}
	return out, nil
}
