// Command workbook-svg draws the workbook's main panel, revocations per hour by status, as an SVG
// for the README, from the SessionRevocation events the handler sent in the end-to-end test run
// that testdata/telemetry/workbook-events.json records (e2e TestTelemetryForTheWorkbook).
//
//	go test ./e2e -run TestTelemetryForTheWorkbook -update-workbook-picture   # the events
//	go run ./scripts/workbook-svg                                             # docs/workbook.svg
//
// Run it from the repository root. The drawing is deterministic: the same events give the same
// bytes, which main_test.go checks against the committed picture.
package main

import (
	"encoding/json"
	"fmt"
	"html"
	"os"
	"slices"
	"strings"
)

const (
	eventsPath = "testdata/telemetry/workbook-events.json"
	svgPath    = "docs/workbook.svg"
)

// row is one SessionRevocation event: the round of the run it belongs to (drawn as an hour) and
// its status.
type row struct {
	Hour   int    `json:"hour"`
	Status string `json:"status"`
	Caller string `json:"caller"`
}

// statuses in drawing order (bottom up), with the colours of the workbook's palette.
var statuses = []struct{ name, colour string }{
	{"revoked", "#107c10"},
	{"dry_run", "#8a8886"},
	{"queued", "#4f6bed"},
	{"not_found", "#ca5010"},
	{"protected", "#8764b8"},
	{"out_of_scope", "#00b7c3"},
	{"denied", "#d13438"},
	{"throttled", "#ffaa44"},
	{"failed", "#a4262c"},
}

func main() {
	b, err := os.ReadFile(eventsPath)
	if err == nil {
		var rows []row
		if err = json.Unmarshal(b, &rows); err == nil {
			var svg string
			if svg, err = render(rows); err == nil {
				err = os.WriteFile(svgPath, []byte(svg), 0o644)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "workbook-svg:", err)
		os.Exit(1)
	}
}

// render draws revocations per hour as stacked bars, one colour per status, with a legend of the
// statuses that occur.
func render(rows []row) (string, error) {
	if len(rows) == 0 {
		return "", fmt.Errorf("no events")
	}
	hours := 0
	counts := map[int]map[string]int{}
	seen := map[string]bool{}
	for _, r := range rows {
		if !slices.ContainsFunc(statuses, func(s struct{ name, colour string }) bool { return s.name == r.Status }) {
			return "", fmt.Errorf("unknown status %q", r.Status)
		}
		if r.Hour < 0 || r.Hour > 47 {
			return "", fmt.Errorf("hour %d out of range", r.Hour)
		}
		hours = max(hours, r.Hour+1)
		if counts[r.Hour] == nil {
			counts[r.Hour] = map[string]int{}
		}
		counts[r.Hour][r.Status]++
		seen[r.Status] = true
	}
	peak := 0
	for _, c := range counts {
		n := 0
		for _, v := range c {
			n += v
		}
		peak = max(peak, n)
	}
	step := 1
	for peak/step > 8 {
		step *= 2
	}
	top := (peak + step - 1) / step * step

	const (
		width, height           = 720, 360
		left, right, up, bottom = 56, 170, 64, 48
	)
	plotW, plotH := float64(width-left-right), float64(height-up-bottom)
	slot := plotW / float64(hours)
	barW := slot * 0.6
	y := func(v int) float64 { return float64(up) + plotH - plotH*float64(v)/float64(top) }

	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&s, `<rect width="%d" height="%d" fill="#ffffff" stroke="#e1dfdd"/>`+"\n", width, height)
	fmt.Fprintf(&s, `<text x="%d" y="26" font-size="16" font-weight="600" fill="#323130">Revocations per hour by status</text>`+"\n", left)
	fmt.Fprintf(&s, `<text x="%d" y="46" fill="#605e5c">%s</text>`+"\n", left,
		html.EscapeString(fmt.Sprintf("entra-revoke workbook, main panel: %d SessionRevocation events the handler sent in a test run", len(rows))))
	for v := 0; v <= top; v += step {
		fmt.Fprintf(&s, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#edebe9"/>`+"\n", left, y(v), width-right, y(v))
		fmt.Fprintf(&s, `<text x="%d" y="%.1f" text-anchor="end" fill="#605e5c">%d</text>`+"\n", left-8, y(v)+4, v)
	}
	fmt.Fprintf(&s, `<text x="16" y="%.1f" fill="#605e5c" transform="rotate(-90 16 %.1f)" text-anchor="middle">users</text>`+"\n", float64(up)+plotH/2, float64(up)+plotH/2)
	for h := range hours {
		x := float64(left) + slot*float64(h) + (slot-barW)/2
		base := 0
		for _, st := range statuses {
			n := counts[h][st.name]
			if n == 0 {
				continue
			}
			fmt.Fprintf(&s, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>hour %d: %d %s</title></rect>`+"\n",
				x, y(base+n), barW, y(base)-y(base+n), st.colour, h+1, n, st.name)
			base += n
		}
		fmt.Fprintf(&s, `<text x="%.1f" y="%d" text-anchor="middle" fill="#605e5c">hour %d</text>`+"\n", x+barW/2, height-bottom+18, h+1)
	}
	fmt.Fprintf(&s, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#8a8886"/>`+"\n", left, y(0), width-right, y(0))
	ly := up
	for _, st := range statuses {
		if !seen[st.name] {
			continue
		}
		total := 0
		for _, c := range counts {
			total += c[st.name]
		}
		fmt.Fprintf(&s, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`+"\n", width-right+20, ly, st.colour)
		fmt.Fprintf(&s, `<text x="%d" y="%d" fill="#323130">%s (%d)</text>`+"\n", width-right+38, ly+10, st.name, total)
		ly += 22
	}
	s.WriteString("</svg>\n")
	return s.String(), nil
}
