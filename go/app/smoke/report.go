package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/schollz/progressbar/v3"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// barProgress draws a progress bar with the latest loss: for a terminal.
type barProgress struct {
	bar *progressbar.ProgressBar
	out io.Writer
}

func newBarProgress(out io.Writer, total int) *barProgress {
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetDescription("training"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(0),
		progressbar.OptionSetRenderBlankState(true),
	)
	return &barProgress{bar: bar, out: out}
}

func (p *barProgress) update(step, _ int, loss, tokPerSec float64, executors string, fallbacks int64) {
	p.bar.Describe(fmt.Sprintf("loss %.4f  %.0f tok/s  %s  fallbacks %d", loss, tokPerSec, executors, fallbacks))
	_ = p.bar.Set(step)
}

func (p *barProgress) finish() {
	_ = p.bar.Finish()
	_, _ = io.WriteString(p.out, "\n")
}

// number is a float64 that marshals non-finite values as JSON null.
type number float64

func (n number) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(n))
}

// summaryJSON is the -json file: what a run did, for dashboards and CI artifacts.
type summaryJSON struct {
	Pass           bool              `json:"pass"`
	Verdict        string            `json:"verdict"`
	FirstStep      int               `json:"first_step"`
	Steps          int               `json:"steps"` // steps run by this process
	Losses         []number          `json:"losses"`
	LossFirst      number            `json:"loss_first"`
	LossLast       number            `json:"loss_last"`
	Accuracy       number            `json:"last_batch_accuracy"`
	Tokens         int               `json:"tokens"`
	ElapsedSeconds number            `json:"elapsed_seconds"`
	TokensPerSec   number            `json:"tokens_per_second"`
	Executors      map[string]int64  `json:"executors"` // calls per executor
	Fallbacks      []fallbackJSON    `json:"fallbacks"`
	Copies         map[string]copyJS `json:"copies"` // by kind of copy (storage mode)
}

type fallbackJSON struct {
	Reason string `json:"reason"` // "executor: cause"
	Count  int64  `json:"count"`
	Detail string `json:"detail,omitempty"`
}

type copyJS struct {
	Count int64 `json:"count"`
	Bytes int64 `json:"bytes"`
}

func (r result) json(verdict error) summaryJSON {
	s := summaryJSON{
		Pass: verdict == nil, Verdict: "pass",
		FirstStep: r.FirstStep, Steps: len(r.Losses),
		LossFirst: number(r.First), LossLast: number(r.Last), Accuracy: number(r.Accuracy),
		Tokens: r.Tokens, ElapsedSeconds: number(r.Elapsed.Seconds()), TokensPerSec: number(float64(r.Tokens) / r.Elapsed.Seconds()),
		Executors: r.Calls, Fallbacks: []fallbackJSON{}, Copies: map[string]copyJS{},
	}
	if verdict != nil {
		s.Verdict = verdict.Error()
	}
	for _, l := range r.Losses {
		s.Losses = append(s.Losses, number(l))
	}
	for _, k := range slices.Sorted(maps.Keys(r.Fallbacks)) {
		s.Fallbacks = append(s.Fallbacks, fallbackJSON{Reason: k, Count: r.Fallbacks[k], Detail: r.Detail[k]})
	}
	for k, c := range r.Copies {
		s.Copies[k] = copyJS(allocator.Copy(c))
	}
	return s
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Loss plot size in pixels.
const (
	plotWidth, plotHeight = 800, 450
	plotDPI               = 96
)

// writeLossPlot draws the loss per step as a PNG of plotWidth × plotHeight pixels, with
// axes, a title naming the executors that ran, and chance (log V) as a dashed line.
func writeLossPlot(path string, r result, vocab int) error {
	p := plot.New()
	names := slices.Sorted(maps.Keys(r.Calls))
	p.Title.Text = fmt.Sprintf("smoke: sequence reversal, executor %s", strings.Join(names, " + "))
	if len(names) == 0 {
		p.Title.Text = "smoke: sequence reversal"
	}
	p.X.Label.Text = "step"
	p.Y.Min = 0
	p.Y.Label.Text = "cross-entropy loss (nats)"
	p.Add(plotter.NewGrid())
	pts := make(plotter.XYs, 0, len(r.Losses))
	for i, l := range r.Losses {
		if !math.IsNaN(l) && !math.IsInf(l, 0) {
			pts = append(pts, plotter.XY{X: float64(r.FirstStep + i), Y: l})
		}
	}
	if len(pts) > 0 {
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add("loss", line)
		chance, err := plotter.NewLine(plotter.XYs{{X: pts[0].X, Y: math.Log(float64(vocab))}, {X: pts[len(pts)-1].X, Y: math.Log(float64(vocab))}})
		if err != nil {
			return err
		}
		chance.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		chance.Color = color.Gray{Y: 0x80}
		p.Add(chance)
		p.Legend.Add("chance (log V)", chance)
		p.Legend.Top = true
	}
	c := vgimg.NewWith(vgimg.UseWH(vg.Length(plotWidth)*vg.Inch/plotDPI, vg.Length(plotHeight)*vg.Inch/plotDPI), vgimg.UseDPI(plotDPI))
	p.Draw(draw.New(c))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
