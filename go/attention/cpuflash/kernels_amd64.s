//go:build !purego

#include "textflag.h"

// AVX2 + FMA kernels. The Go side (kernels_amd64.go) checks every bound before calling;
// see kernels.go for what each kernel computes.

// exp2 constants: the polynomial c1..c6, 1, and the clamp bounds −126 and 127
// (the same values as the consts in kernels_go.go).
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

// LOADEXP2 puts c1..c6 in Y6..Y11, 1 in Y12, −126 in Y13 and 127 in Y14.
#define LOADEXP2 \
	VBROADCASTSS exp2k<>+0(SB), Y6; \
	VBROADCASTSS exp2k<>+4(SB), Y7; \
	VBROADCASTSS exp2k<>+8(SB), Y8; \
	VBROADCASTSS exp2k<>+12(SB), Y9; \
	VBROADCASTSS exp2k<>+16(SB), Y10; \
	VBROADCASTSS exp2k<>+20(SB), Y11; \
	VBROADCASTSS exp2k<>+24(SB), Y12; \
	VBROADCASTSS exp2k<>+28(SB), Y13; \
	VBROADCASTSS exp2k<>+32(SB), Y14

// EXP2 sets P = 2^X lane by lane (X < −126 gives 0), using LOADEXP2's registers and
// clobbering T1, T2 and M.
//   T1 = min(max(X, −126), 127); T2 = round(T1); T1 = T1 − T2 ∈ [−½, ½]
//   P  = ((((((c6·T1 + c5)·T1 + c4)·T1 + c3)·T1 + c2)·T1 + c1)·T1 + 1)
//   P += int(T2) << 23 (exponent field); P &= (X ≥ −126)
#define EXP2(X, T1, T2, M, P) \
	VMAXPS Y13, X, T1; \
	VMINPS Y14, T1, T1; \
	VROUNDPS $0, T1, T2; \
	VSUBPS T2, T1, T1; \
	VMOVAPS Y11, P; \
	VFMADD213PS Y10, T1, P; \
	VFMADD213PS Y9, T1, P; \
	VFMADD213PS Y8, T1, P; \
	VFMADD213PS Y7, T1, P; \
	VFMADD213PS Y6, T1, P; \
	VFMADD213PS Y12, T1, P; \
	VCVTPS2DQ T2, T2; \
	VPSLLD $23, T2, T2; \
	VPADDD T2, P, P; \
	VCMPPS $13, Y13, X, M; \
	VANDPS M, P, P

// func gemmAVX2(m, n, k int, a *float32, rs, ks int, b *float32, ldb int, c *float32, ldc int, acc int)
//
// C[m×n] (+)= A·B, A(i, p) at a + 4·(i·rs + p·ks), B(p, j) at b + 4·(p·ldb + j),
// C(i, j) at c + 4·(i·ldc + j). m%6 == 0, n%16 == 0, k ≥ 1.
// Column strips of 16 outside, blocks of 6 rows inside; Y0..Y11 hold the 6×16 block.
TEXT ·gemmAVX2(SB), NOSPLIT, $0-88
	MOVQ rs+32(FP), R8
	SHLQ $2, R8
	MOVQ ks+40(FP), R9
	SHLQ $2, R9
	MOVQ ldb+56(FP), R10
	SHLQ $2, R10
	MOVQ ldc+72(FP), R11
	SHLQ $2, R11
	XORQ R13, R13 // byte offset of the column strip

strip:
	MOVQ a+24(FP), SI
	MOVQ c+64(FP), DX
	ADDQ R13, DX
	MOVQ m+0(FP), AX

rows:
	MOVQ SI, R12          // A rows 0..2, moving along p
	LEAQ (SI)(R8*2), DI
	ADDQ R8, DI           // A rows 3..5
	MOVQ b+48(FP), BX
	ADDQ R13, BX
	MOVQ k+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

kloop:
	VMOVUPS (BX), Y12
	VMOVUPS 32(BX), Y13
	VBROADCASTSS (R12), Y14
	VFMADD231PS Y12, Y14, Y0
	VFMADD231PS Y13, Y14, Y1
	VBROADCASTSS (R12)(R8*1), Y15
	VFMADD231PS Y12, Y15, Y2
	VFMADD231PS Y13, Y15, Y3
	VBROADCASTSS (R12)(R8*2), Y14
	VFMADD231PS Y12, Y14, Y4
	VFMADD231PS Y13, Y14, Y5
	VBROADCASTSS (DI), Y15
	VFMADD231PS Y12, Y15, Y6
	VFMADD231PS Y13, Y15, Y7
	VBROADCASTSS (DI)(R8*1), Y14
	VFMADD231PS Y12, Y14, Y8
	VFMADD231PS Y13, Y14, Y9
	VBROADCASTSS (DI)(R8*2), Y15
	VFMADD231PS Y12, Y15, Y10
	VFMADD231PS Y13, Y15, Y11
	ADDQ R9, R12
	ADDQ R9, DI
	ADDQ R10, BX
	DECQ CX
	JNZ  kloop

	LEAQ (DX)(R11*2), DI
	ADDQ R11, DI // C rows 3..5
	MOVQ acc+80(FP), CX
	TESTQ CX, CX
	JZ   store
	VADDPS (DX), Y0, Y0
	VADDPS 32(DX), Y1, Y1
	VADDPS (DX)(R11*1), Y2, Y2
	VADDPS 32(DX)(R11*1), Y3, Y3
	VADDPS (DX)(R11*2), Y4, Y4
	VADDPS 32(DX)(R11*2), Y5, Y5
	VADDPS (DI), Y6, Y6
	VADDPS 32(DI), Y7, Y7
	VADDPS (DI)(R11*1), Y8, Y8
	VADDPS 32(DI)(R11*1), Y9, Y9
	VADDPS (DI)(R11*2), Y10, Y10
	VADDPS 32(DI)(R11*2), Y11, Y11

store:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, (DX)(R11*1)
	VMOVUPS Y3, 32(DX)(R11*1)
	VMOVUPS Y4, (DX)(R11*2)
	VMOVUPS Y5, 32(DX)(R11*2)
	VMOVUPS Y6, (DI)
	VMOVUPS Y7, 32(DI)
	VMOVUPS Y8, (DI)(R11*1)
	VMOVUPS Y9, 32(DI)(R11*1)
	VMOVUPS Y10, (DI)(R11*2)
	VMOVUPS Y11, 32(DI)(R11*2)

	LEAQ (SI)(R8*4), SI
	LEAQ (SI)(R8*2), SI   // next 6 rows of A
	LEAQ (DI)(R11*2), DX
	ADDQ R11, DX          // next 6 rows of C
	SUBQ $6, AX
	JNZ  rows

	ADDQ $64, R13
	MOVQ n+8(FP), AX
	SHLQ $2, AX
	CMPQ R13, AX
	JLT  strip
	VZEROUPPER
	RET

// The tile kernels below walk rows r < rows (stride ld elements) and, within a row,
// columns c < cols (a multiple of 8) in steps of 8. rows ≥ 1 and cols ≥ 8.

// func expColsAVX2(x *float32, rows, cols, ld int, a float32, b, sum *float32)
// x = 2^(a·x − b[c]) in place; sum[c] += x when sum != nil.
TEXT ·expColsAVX2(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), DI
	MOVQ rows+8(FP), R9
	MOVQ cols+16(FP), CX
	SHLQ $2, CX
	MOVQ ld+24(FP), R10
	SHLQ $2, R10
	VBROADCASTSS a+32(FP), Y15
	MOVQ b+40(FP), DX
	MOVQ sum+48(FP), R8
	LOADEXP2

ecrow:
	XORQ AX, AX

eccol:
	VMOVUPS (DX)(AX*1), Y0
	VFMSUB231PS (DI)(AX*1), Y15, Y0 // a·x − b
	EXP2(Y0, Y1, Y2, Y4, Y3)
	VMOVUPS Y3, (DI)(AX*1)
	TESTQ R8, R8
	JZ   ecnext
	VADDPS (R8)(AX*1), Y3, Y3
	VMOVUPS Y3, (R8)(AX*1)

ecnext:
	ADDQ $32, AX
	CMPQ AX, CX
	JLT  eccol
	ADDQ R10, DI
	DECQ R9
	JNZ  ecrow
	VZEROUPPER
	RET

// func expRowsAVX2(x *float32, rows, cols, ld int, a float32, b *float32)
// x = 2^(a·x − b[r]) in place.
TEXT ·expRowsAVX2(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), DI
	MOVQ rows+8(FP), R9
	MOVQ cols+16(FP), CX
	SHLQ $2, CX
	MOVQ ld+24(FP), R10
	SHLQ $2, R10
	VBROADCASTSS a+32(FP), Y15
	MOVQ b+40(FP), DX
	LOADEXP2

errow:
	VBROADCASTSS (DX), Y5
	XORQ AX, AX

ercol:
	VMOVAPS Y5, Y0
	VFMSUB231PS (DI)(AX*1), Y15, Y0 // a·x − b
	EXP2(Y0, Y1, Y2, Y4, Y3)
	VMOVUPS Y3, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, CX
	JLT  ercol
	ADDQ $4, DX
	ADDQ R10, DI
	DECQ R9
	JNZ  errow
	VZEROUPPER
	RET

// func colMaxAVX2(mx, x *float32, rows, cols, ld int)
TEXT ·colMaxAVX2(SB), NOSPLIT, $0-40
	MOVQ mx+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ rows+16(FP), R9
	MOVQ cols+24(FP), CX
	SHLQ $2, CX
	MOVQ ld+32(FP), R10
	SHLQ $2, R10

cmrow:
	XORQ AX, AX

cmcol:
	VMOVUPS (DI)(AX*1), Y0
	VMAXPS (SI)(AX*1), Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, CX
	JLT  cmcol
	ADDQ R10, SI
	DECQ R9
	JNZ  cmrow
	VZEROUPPER
	RET

// func dsColsAVX2(ds, p, dp *float32, rows, cols, ld int, d *float32, s float32)
// ds = p·(dp − d[c])·s.
TEXT ·dsColsAVX2(SB), NOSPLIT, $0-60
	MOVQ ds+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ dp+16(FP), R8
	MOVQ rows+24(FP), R9
	MOVQ cols+32(FP), CX
	SHLQ $2, CX
	MOVQ ld+40(FP), R10
	SHLQ $2, R10
	MOVQ d+48(FP), DX
	VBROADCASTSS s+56(FP), Y15

dcrow:
	XORQ AX, AX

dccol:
	VMOVUPS (R8)(AX*1), Y0
	VSUBPS (DX)(AX*1), Y0, Y0
	VMULPS (SI)(AX*1), Y0, Y0
	VMULPS Y15, Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, CX
	JLT  dccol
	ADDQ R10, DI
	ADDQ R10, SI
	ADDQ R10, R8
	DECQ R9
	JNZ  dcrow
	VZEROUPPER
	RET

// func dsRowsAVX2(ds, p, dp *float32, rows, cols, ld int, d *float32, s float32)
// ds = p·(dp − d[r])·s.
TEXT ·dsRowsAVX2(SB), NOSPLIT, $0-60
	MOVQ ds+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ dp+16(FP), R8
	MOVQ rows+24(FP), R9
	MOVQ cols+32(FP), CX
	SHLQ $2, CX
	MOVQ ld+40(FP), R10
	SHLQ $2, R10
	MOVQ d+48(FP), DX
	VBROADCASTSS s+56(FP), Y15

drrow:
	VBROADCASTSS (DX), Y14
	XORQ AX, AX

drcol:
	VMOVUPS (R8)(AX*1), Y0
	VSUBPS Y14, Y0, Y0
	VMULPS (SI)(AX*1), Y0, Y0
	VMULPS Y15, Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, CX
	JLT  drcol
	ADDQ $4, DX
	ADDQ R10, DI
	ADDQ R10, SI
	ADDQ R10, R8
	DECQ R9
	JNZ  drrow
	VZEROUPPER
	RET

// func scaleRowsAVX2(x *float32, rows, cols, ld int, f *float32)
// x(r, c) *= f[r].
TEXT ·scaleRowsAVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), DI
	MOVQ rows+8(FP), R9
	MOVQ cols+16(FP), CX
	SHLQ $2, CX
	MOVQ ld+24(FP), R10
	SHLQ $2, R10
	MOVQ f+32(FP), DX

srrow:
	VBROADCASTSS (DX), Y15
	XORQ AX, AX

srcol:
	VMULPS (DI)(AX*1), Y15, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, CX
	JLT  srcol
	ADDQ $4, DX
	ADDQ R10, DI
	DECQ R9
	JNZ  srrow
	VZEROUPPER
	RET
