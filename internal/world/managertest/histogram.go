package managertest

import (
	"errors"
	"fmt"
	"math"
	"sort"

	dto "github.com/prometheus/client_model/go"
)

// Histograms merged across series, differences of two scrapes, and quantiles.

// Histogram is the merged cumulative buckets of the series of one histogram family.
type Histogram struct {
	// Bounds are the upper bounds, ascending (the last is +Inf); Counts are cumulative.
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// MergedHistogram adds up every series of a histogram family whose labels include match
// (series must share bucket bounds, as one histogram vector's do).
func MergedHistogram(mfs map[string]*dto.MetricFamily, name string, match map[string]string) (Histogram, error) {
	var h Histogram
	mf := mfs[name]
	if mf == nil {
		return h, fmt.Errorf("no metric family %s", name)
	}
	byBound := map[float64]uint64{}
	for _, m := range mf.GetMetric() {
		if m.Histogram == nil || !hasLabels(m, match) {
			continue
		}
		hm := m.GetHistogram()
		h.Count += hm.GetSampleCount()
		h.Sum += hm.GetSampleSum()
		for _, b := range hm.GetBucket() {
			byBound[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	for b := range byBound {
		h.Bounds = append(h.Bounds, b)
	}
	sort.Float64s(h.Bounds)
	if len(h.Bounds) == 0 || !math.IsInf(h.Bounds[len(h.Bounds)-1], 1) {
		h.Bounds = append(h.Bounds, math.Inf(1))
		byBound[math.Inf(1)] = h.Count
	}
	for _, b := range h.Bounds {
		h.Counts = append(h.Counts, byBound[b])
	}
	return h, nil
}

// Sub returns h minus an earlier scrape of the same histogram (observations in between).
func (h Histogram) Sub(earlier Histogram) Histogram {
	out := Histogram{Bounds: h.Bounds, Count: h.Count - earlier.Count, Sum: h.Sum - earlier.Sum}
	prev := map[float64]uint64{}
	for i, b := range earlier.Bounds {
		prev[b] = earlier.Counts[i]
	}
	for i, b := range h.Bounds {
		out.Counts = append(out.Counts, h.Counts[i]-prev[b])
	}
	return out
}

// Quantile estimates the q-quantile the way Prometheus's histogram_quantile does: linear
// interpolation inside the bucket holding the rank (so it is an estimate, only as fine as the
// bucket bounds; a rank in the +Inf bucket returns the highest finite bound).
func (h Histogram) Quantile(q float64) (float64, error) {
	if h.Count == 0 {
		return 0, errors.New("empty histogram")
	}
	rank := q * float64(h.Count)
	lower, prevCount := 0.0, uint64(0)
	for i, b := range h.Bounds {
		c := h.Counts[i]
		if float64(c) >= rank {
			if math.IsInf(b, 1) {
				return lower, nil
			}
			if c == prevCount {
				return b, nil
			}
			return lower + (b-lower)*(rank-float64(prevCount))/float64(c-prevCount), nil
		}
		lower, prevCount = b, c
	}
	return lower, nil
}
