// Stand-in for part of Apple's SDK (see Metal/Metal.h).
#pragma once
int getpagesize(void);
