package face

// The Prometheus text exposition format, version 0.0.4
// (prometheus.io/docs/instrumenting/exposition_formats). Hand-written:
// the format is a few lines of rules, and the libraries that write it
// (client_golang, common/expfmt) bring protocol buffers into a kernel
// image that has no other use for them (docs/guide.md gives the sizes).
// The tests check the output with the reference parser and promtool.

import (
	"bytes"
	"math"
	"strconv"
	"strings"
)

// Kind is a metric family's type.
type Kind uint8

const (
	Counter Kind = iota
	Gauge
)

func (k Kind) String() string {
	if k == Counter {
		return "counter"
	}
	return "gauge"
}

// A Collector adds its metric families to m.
type Collector func(m *Metrics)

// Metrics gathers families for one scrape. A family is declared once,
// where it first appears; its samples stay together in the output.
type Metrics struct {
	fams  []*family
	index map[string]*family
}

type family struct {
	name, help string
	kind       Kind
	samples    []sample
}

type sample struct {
	labels []string // name, value, name, value...
	value  float64
}

// Add records one sample of family name. labels are pairs of label
// name and value. A family's kind and help are those of its first sample.
func (m *Metrics) Add(name, help string, kind Kind, value float64, labels ...string) {
	if m.index == nil {
		m.index = map[string]*family{}
	}
	f := m.index[name]
	if f == nil {
		f = &family{name: name, help: help, kind: kind}
		m.index[name] = f
		m.fams = append(m.fams, f)
	}
	f.samples = append(f.samples, sample{labels: labels, value: value})
}

// Counter and Gauge are Add of that kind.
func (m *Metrics) Counter(name, help string, v float64, labels ...string) {
	m.Add(name, help, Counter, v, labels...)
}

func (m *Metrics) Gauge(name, help string, v float64, labels ...string) {
	m.Add(name, help, Gauge, v, labels...)
}

// Len is the number of samples gathered.
func (m *Metrics) Len() int {
	n := 0
	for _, f := range m.fams {
		n += len(f.samples)
	}
	return n
}

// WriteTo appends the exposition of every family to b.
func (m *Metrics) write(b *bytes.Buffer) {
	for _, f := range m.fams {
		b.WriteString("# HELP ")
		b.WriteString(f.name)
		b.WriteByte(' ')
		b.WriteString(helpEscaper.Replace(f.help))
		b.WriteString("\n# TYPE ")
		b.WriteString(f.name)
		b.WriteByte(' ')
		b.WriteString(f.kind.String())
		b.WriteByte('\n')
		for _, s := range f.samples {
			b.WriteString(f.name)
			if len(s.labels) > 0 {
				b.WriteByte('{')
				for i := 0; i+1 < len(s.labels); i += 2 {
					if i > 0 {
						b.WriteByte(',')
					}
					b.WriteString(s.labels[i])
					b.WriteString(`="`)
					b.WriteString(labelEscaper.Replace(s.labels[i+1]))
					b.WriteByte('"')
				}
				b.WriteByte('}')
			}
			b.WriteByte(' ')
			b.WriteString(formatValue(s.value))
			b.WriteByte('\n')
		}
	}
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// validName reports whether s is a metric or label name: [a-zA-Z_:][a-zA-Z0-9_:]*.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
