package main

// Instruction counts in metal-flash-attention's convention (its README): per head, the
// forward pass is (2D+5)·N·M instructions, dQ (3D+5)·N·M and dK/dV (4D+5)·N·M, so
// forward+backward is (9D+15)·N·M. One instruction is one FMA-class ALU operation, so a
// GPU's peak is cores × 128 ALUs × clock.
func forwardInstr(d, n, m int) float64 { return float64(2*d+5) * float64(n) * float64(m) }

func fwdBwdInstr(d, n, m int) float64 {
	return float64(2*d+5+3*d+5+4*d+5) * float64(n) * float64(m)
}
