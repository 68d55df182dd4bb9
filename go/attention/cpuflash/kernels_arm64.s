//go:build !purego

#include "textflag.h"

// NEON kernels. The Go side (kernels_arm64.go) checks every bound before calling; see
// kernels.go for what each kernel computes. Go's assembler has no vector FADD, FSUB,
// FMUL, FMAX, FMIN, FNEG, FRINTN, FCVTZS or FCMGE, so those are WORD encodings (taken
// from GNU as; the instruction is in the comment beside each).

// exp2 constants, as in kernels_go.go: c1..c6, 1, −126, 127.
DATA exp2k<>+0(SB)/4, $0x3f317218
DATA exp2k<>+4(SB)/4, $0x3e75fdee
DATA exp2k<>+8(SB)/4, $0x3d635774
DATA exp2k<>+12(SB)/4, $0x3c1d96a6
DATA exp2k<>+16(SB)/4, $0x3aaf9f29
DATA exp2k<>+20(SB)/4, $0x3920fdde
DATA exp2k<>+24(SB)/4, $0x3f800000
DATA exp2k<>+28(SB)/4, $0xc2fc0000
DATA exp2k<>+32(SB)/4, $0x42fe0000
GLOBL exp2k<>(SB), RODATA|NOPTR, $36

// LOADEXP2 puts c1..c6 in V16..V21, 1 in V22, −126 in V23 and 127 in V24; clobbers R1.
#define LOADEXP2 \
	MOVD $exp2k<>(SB), R1; \
	VLD1R.P 4(R1), [V16.S4]; \
	VLD1R.P 4(R1), [V17.S4]; \
	VLD1R.P 4(R1), [V18.S4]; \
	VLD1R.P 4(R1), [V19.S4]; \
	VLD1R.P 4(R1), [V20.S4]; \
	VLD1R.P 4(R1), [V21.S4]; \
	VLD1R.P 4(R1), [V22.S4]; \
	VLD1R.P 4(R1), [V23.S4]; \
	VLD1R.P 4(R1), [V24.S4]

// EXP2 sets V3 = 2^x lane by lane for x = −V0 (the callers compute b − a·s with one
// FMLS), using LOADEXP2's registers and clobbering V0, V1, V2, V4, V5:
//   V0 = x; V1 = min(max(x, −126), 127); V2 = round(V1); V1 = V1 − V2 ∈ [−½, ½]
//   V3 = ((((((c6·V1 + c5)·V1 + c4)·V1 + c3)·V1 + c2)·V1 + c1)·V1 + 1)
//   V3 += int(V2) << 23; V3 &= (x ≥ −126)
#define EXP2 \
	WORD $0x6ea0f800; \
	WORD $0x4e37f401; \
	WORD $0x4eb8f421; \
	WORD $0x4e218822; \
	WORD $0x4ea2d421; \
	VORR V20.B16, V20.B16, V4.B16; \
	VFMLA V1.S4, V21.S4, V4.S4; \
	VORR V19.B16, V19.B16, V3.B16; \
	VFMLA V1.S4, V4.S4, V3.S4; \
	VORR V18.B16, V18.B16, V4.B16; \
	VFMLA V1.S4, V3.S4, V4.S4; \
	VORR V17.B16, V17.B16, V3.B16; \
	VFMLA V1.S4, V4.S4, V3.S4; \
	VORR V16.B16, V16.B16, V4.B16; \
	VFMLA V1.S4, V3.S4, V4.S4; \
	VORR V22.B16, V22.B16, V3.B16; \
	VFMLA V1.S4, V4.S4, V3.S4; \
	WORD $0x4ea1b842; \
	VSHL $23, V2.S4, V2.S4; \
	VADD V2.S4, V3.S4, V3.S4; \
	WORD $0x6e37e405; \
	VAND V5.B16, V3.B16, V3.B16

// (EXP2's WORDs: fneg v0.4s, v0.4s; fmax v1.4s, v0.4s, v23.4s; fmin v1.4s, v1.4s, v24.4s;
// frintn v2.4s, v1.4s; fsub v1.4s, v1.4s, v2.4s; … fcvtzs v2.4s, v2.4s; …
// fcmge v5.4s, v0.4s, v23.4s.)

// func gemmNEON(m, n, k int, a *float32, rs, ks int, b *float32, ldb int, c *float32, ldc int, acc int)
//
// C[m×n] (+)= A·B, A(i, p) at a + 4·(i·rs + p·ks), B(p, j) at b + 4·(p·ldb + j),
// C(i, j) at c + 4·(i·ldc + j). m%6 == 0, n%16 == 0, k ≥ 1. Column strips of 16
// outside, blocks of 6 rows inside; V8..V31 hold the 6×16 block, starting from C when
// acc != 0 and from 0 otherwise.
TEXT ·gemmNEON(SB), NOSPLIT, $0-88
	MOVD rs+32(FP), R8
	LSL  $2, R8, R8
	MOVD ks+40(FP), R9
	LSL  $2, R9, R9
	MOVD ldb+56(FP), R7
	LSL  $2, R7, R7
	MOVD ldc+72(FP), R6
	LSL  $2, R6, R6
	MOVD acc+80(FP), R19
	MOVD $0, R20 // byte offset of the column strip

strip:
	MOVD a+24(FP), R21
	MOVD c+64(FP), R22
	ADD  R20, R22, R22
	MOVD m+0(FP), R23

rows:
	MOVD R21, R10
	ADD  R8, R10, R11
	ADD  R8, R11, R12
	ADD  R8, R12, R13
	ADD  R8, R13, R14
	ADD  R8, R14, R15
	MOVD b+48(FP), R16
	ADD  R20, R16, R16
	CBZ  R19, zero
	MOVD R22, R17
	VLD1.P (R17)(R6), [V8.S4, V9.S4, V10.S4, V11.S4]
	VLD1.P (R17)(R6), [V12.S4, V13.S4, V14.S4, V15.S4]
	VLD1.P (R17)(R6), [V16.S4, V17.S4, V18.S4, V19.S4]
	VLD1.P (R17)(R6), [V20.S4, V21.S4, V22.S4, V23.S4]
	VLD1.P (R17)(R6), [V24.S4, V25.S4, V26.S4, V27.S4]
	VLD1.P (R17)(R6), [V28.S4, V29.S4, V30.S4, V31.S4]
	B    kstart

zero:
	VEOR V8.B16, V8.B16, V8.B16
	VEOR V9.B16, V9.B16, V9.B16
	VEOR V10.B16, V10.B16, V10.B16
	VEOR V11.B16, V11.B16, V11.B16
	VEOR V12.B16, V12.B16, V12.B16
	VEOR V13.B16, V13.B16, V13.B16
	VEOR V14.B16, V14.B16, V14.B16
	VEOR V15.B16, V15.B16, V15.B16
	VEOR V16.B16, V16.B16, V16.B16
	VEOR V17.B16, V17.B16, V17.B16
	VEOR V18.B16, V18.B16, V18.B16
	VEOR V19.B16, V19.B16, V19.B16
	VEOR V20.B16, V20.B16, V20.B16
	VEOR V21.B16, V21.B16, V21.B16
	VEOR V22.B16, V22.B16, V22.B16
	VEOR V23.B16, V23.B16, V23.B16
	VEOR V24.B16, V24.B16, V24.B16
	VEOR V25.B16, V25.B16, V25.B16
	VEOR V26.B16, V26.B16, V26.B16
	VEOR V27.B16, V27.B16, V27.B16
	VEOR V28.B16, V28.B16, V28.B16
	VEOR V29.B16, V29.B16, V29.B16
	VEOR V30.B16, V30.B16, V30.B16
	VEOR V31.B16, V31.B16, V31.B16

kstart:
	MOVD k+16(FP), R5

kloop:
	VLD1.P (R16)(R7), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1R.P (R10)(R9), [V4.S4]
	VLD1R.P (R11)(R9), [V5.S4]
	VLD1R.P (R12)(R9), [V6.S4]
	VLD1R.P (R13)(R9), [V7.S4]
	VFMLA V0.S4, V4.S4, V8.S4
	VFMLA V1.S4, V4.S4, V9.S4
	VFMLA V2.S4, V4.S4, V10.S4
	VFMLA V3.S4, V4.S4, V11.S4
	VLD1R.P (R14)(R9), [V4.S4]
	VFMLA V0.S4, V5.S4, V12.S4
	VFMLA V1.S4, V5.S4, V13.S4
	VFMLA V2.S4, V5.S4, V14.S4
	VFMLA V3.S4, V5.S4, V15.S4
	VLD1R.P (R15)(R9), [V5.S4]
	VFMLA V0.S4, V6.S4, V16.S4
	VFMLA V1.S4, V6.S4, V17.S4
	VFMLA V2.S4, V6.S4, V18.S4
	VFMLA V3.S4, V6.S4, V19.S4
	VFMLA V0.S4, V7.S4, V20.S4
	VFMLA V1.S4, V7.S4, V21.S4
	VFMLA V2.S4, V7.S4, V22.S4
	VFMLA V3.S4, V7.S4, V23.S4
	VFMLA V0.S4, V4.S4, V24.S4
	VFMLA V1.S4, V4.S4, V25.S4
	VFMLA V2.S4, V4.S4, V26.S4
	VFMLA V3.S4, V4.S4, V27.S4
	VFMLA V0.S4, V5.S4, V28.S4
	VFMLA V1.S4, V5.S4, V29.S4
	VFMLA V2.S4, V5.S4, V30.S4
	VFMLA V3.S4, V5.S4, V31.S4
	SUBS $1, R5, R5
	BNE  kloop

	MOVD R22, R17
	VST1.P [V8.S4, V9.S4, V10.S4, V11.S4], (R17)(R6)
	VST1.P [V12.S4, V13.S4, V14.S4, V15.S4], (R17)(R6)
	VST1.P [V16.S4, V17.S4, V18.S4, V19.S4], (R17)(R6)
	VST1.P [V20.S4, V21.S4, V22.S4, V23.S4], (R17)(R6)
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], (R17)(R6)
	VST1.P [V28.S4, V29.S4, V30.S4, V31.S4], (R17)(R6)
	ADD  R8<<2, R21, R21
	ADD  R8<<1, R21, R21 // next 6 rows of A
	MOVD R17, R22        // next 6 rows of C
	SUBS $6, R23, R23
	BNE  rows

	ADD  $64, R20, R20
	MOVD n+8(FP), R24
	LSL  $2, R24, R24
	CMP  R24, R20
	BLT  strip
	RET

// The tile kernels below walk rows r < rows (stride ld elements) and, within a row,
// columns c < cols (a multiple of 8) in steps of 4. rows ≥ 1 and cols ≥ 8.

// func expColsNEON(x *float32, rows, cols, ld int, a float32, b, sum *float32)
// x = 2^(a·x − b[c]) in place; sum[c] += x when sum != nil.
TEXT ·expColsNEON(SB), NOSPLIT, $0-56
	MOVD  x+0(FP), R10
	MOVD  rows+8(FP), R9
	MOVD  cols+16(FP), R14
	MOVD  ld+24(FP), R15
	LSL   $2, R15, R15
	MOVWU a+32(FP), R2
	VDUP  R2, V25.S4
	MOVD  b+40(FP), R12
	MOVD  sum+48(FP), R13
	LOADEXP2

ecrow:
	MOVD R10, R11
	MOVD R12, R3
	MOVD R13, R4
	MOVD R14, R5

eccol:
	VLD1.P 16(R3), [V0.S4]
	VLD1   (R11), [V6.S4]
	VFMLS  V6.S4, V25.S4, V0.S4 // b − a·x
	EXP2
	VST1.P [V3.S4], 16(R11)
	CBZ    R13, ecnext
	VLD1   (R4), [V6.S4]
	WORD   $0x4e23d4c6          // fadd v6.4s, v6.4s, v3.4s
	VST1.P [V6.S4], 16(R4)

ecnext:
	SUBS $4, R5, R5
	BNE  eccol
	ADD  R15, R10, R10
	SUBS $1, R9, R9
	BNE  ecrow
	RET

// func expRowsNEON(x *float32, rows, cols, ld int, a float32, b *float32)
// x = 2^(a·x − b[r]) in place.
TEXT ·expRowsNEON(SB), NOSPLIT, $0-48
	MOVD  x+0(FP), R10
	MOVD  rows+8(FP), R9
	MOVD  cols+16(FP), R14
	MOVD  ld+24(FP), R15
	LSL   $2, R15, R15
	MOVWU a+32(FP), R2
	VDUP  R2, V25.S4
	MOVD  b+40(FP), R12
	LOADEXP2

errow:
	VLD1R.P 4(R12), [V26.S4]
	MOVD    R10, R11
	MOVD    R14, R5

ercol:
	VORR   V26.B16, V26.B16, V0.B16
	VLD1   (R11), [V6.S4]
	VFMLS  V6.S4, V25.S4, V0.S4 // b − a·x
	EXP2
	VST1.P [V3.S4], 16(R11)
	SUBS   $4, R5, R5
	BNE    ercol
	ADD    R15, R10, R10
	SUBS   $1, R9, R9
	BNE    errow
	RET

// func colMaxNEON(mx, x *float32, rows, cols, ld int)
TEXT ·colMaxNEON(SB), NOSPLIT, $0-40
	MOVD mx+0(FP), R10
	MOVD x+8(FP), R11
	MOVD rows+16(FP), R9
	MOVD cols+24(FP), R14
	MOVD ld+32(FP), R15
	LSL  $2, R15, R15

cmrow:
	MOVD R10, R3
	MOVD R11, R4
	MOVD R14, R5

cmcol:
	VLD1   (R3), [V0.S4]
	VLD1.P 16(R4), [V1.S4]
	WORD   $0x4e21f400 // fmax v0.4s, v0.4s, v1.4s
	VST1.P [V0.S4], 16(R3)
	SUBS   $4, R5, R5
	BNE    cmcol
	ADD    R15, R11, R11
	SUBS   $1, R9, R9
	BNE    cmrow
	RET

// func dsColsNEON(ds, p, dp *float32, rows, cols, ld int, d *float32, s float32)
// ds = p·(dp − d[c])·s.
TEXT ·dsColsNEON(SB), NOSPLIT, $0-60
	MOVD  ds+0(FP), R10
	MOVD  p+8(FP), R11
	MOVD  dp+16(FP), R12
	MOVD  rows+24(FP), R9
	MOVD  cols+32(FP), R14
	MOVD  ld+40(FP), R15
	LSL   $2, R15, R15
	MOVD  d+48(FP), R13
	MOVWU s+56(FP), R2
	VDUP  R2, V25.S4

dcrow:
	MOVD R10, R3
	MOVD R11, R4
	MOVD R12, R6
	MOVD R13, R7
	MOVD R14, R5

dccol:
	VLD1.P 16(R6), [V0.S4]
	VLD1.P 16(R7), [V1.S4]
	VLD1.P 16(R4), [V2.S4]
	WORD   $0x4ea1d400 // fsub v0.4s, v0.4s, v1.4s
	WORD   $0x6e22dc00 // fmul v0.4s, v0.4s, v2.4s
	WORD   $0x6e39dc00 // fmul v0.4s, v0.4s, v25.4s
	VST1.P [V0.S4], 16(R3)
	SUBS   $4, R5, R5
	BNE    dccol
	ADD    R15, R10, R10
	ADD    R15, R11, R11
	ADD    R15, R12, R12
	SUBS   $1, R9, R9
	BNE    dcrow
	RET

// func dsRowsNEON(ds, p, dp *float32, rows, cols, ld int, d *float32, s float32)
// ds = p·(dp − d[r])·s.
TEXT ·dsRowsNEON(SB), NOSPLIT, $0-60
	MOVD  ds+0(FP), R10
	MOVD  p+8(FP), R11
	MOVD  dp+16(FP), R12
	MOVD  rows+24(FP), R9
	MOVD  cols+32(FP), R14
	MOVD  ld+40(FP), R15
	LSL   $2, R15, R15
	MOVD  d+48(FP), R13
	MOVWU s+56(FP), R2
	VDUP  R2, V25.S4

drrow:
	VLD1R.P 4(R13), [V24.S4]
	MOVD    R10, R3
	MOVD    R11, R4
	MOVD    R12, R6
	MOVD    R14, R5

drcol:
	VLD1.P 16(R6), [V0.S4]
	VLD1.P 16(R4), [V2.S4]
	WORD   $0x4eb8d400 // fsub v0.4s, v0.4s, v24.4s
	WORD   $0x6e22dc00 // fmul v0.4s, v0.4s, v2.4s
	WORD   $0x6e39dc00 // fmul v0.4s, v0.4s, v25.4s
	VST1.P [V0.S4], 16(R3)
	SUBS   $4, R5, R5
	BNE    drcol
	ADD    R15, R10, R10
	ADD    R15, R11, R11
	ADD    R15, R12, R12
	SUBS   $1, R9, R9
	BNE    drrow
	RET

// func scaleRowsNEON(x *float32, rows, cols, ld int, f *float32)
// x(r, c) *= f[r].
TEXT ·scaleRowsNEON(SB), NOSPLIT, $0-40
	MOVD x+0(FP), R10
	MOVD rows+8(FP), R9
	MOVD cols+16(FP), R14
	MOVD ld+24(FP), R15
	LSL  $2, R15, R15
	MOVD f+32(FP), R12

srrow:
	VLD1R.P 4(R12), [V25.S4]
	MOVD    R10, R11
	MOVD    R14, R5

srcol:
	VLD1   (R11), [V0.S4]
	WORD   $0x6e39dc00 // fmul v0.4s, v0.4s, v25.4s
	VST1.P [V0.S4], 16(R11)
	SUBS   $4, R5, R5
	BNE    srcol
	ADD    R15, R10, R10
	SUBS   $1, R9, R9
	BNE    srrow
	RET
