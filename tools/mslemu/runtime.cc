//go:build cgo && linux

// The emulation runtime: runs the threads of a threadgroup as fibers (user-level
// contexts on one OS thread), threadgroups one after another, and implements
// threadgroup_barrier and the SIMD-group exchange that every SIMD function uses.
//
// This translation unit never sees the shim's macros (`thread` would break <thread>):
// it talks to the kernels only through shim/mslemu_rt.h.
//
// Scheduling: a scheduler loop on the calling thread's stack switches to the next ready
// fiber; a fiber runs until it waits (barrier, SIMD exchange), returns or fails, then
// switches back. A threadgroup is deadlocked exactly when no fiber is ready and not all
// have returned; divergence is caught when it happens (a thread reaching a barrier the
// others do not wait at).

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "shim/mslemu_rt.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define MSLEMU_TSAN 1
// The runtime's own bookkeeping is shared by all fibers without happens-before edges
// (fibers switch without synchronising, so that kernel races stay visible); it is not
// instrumented.
#define NOTSAN __attribute__((no_sanitize_thread, noinline))
#else
#define MSLEMU_TSAN 0
#define NOTSAN
#endif

#if !(defined(__x86_64__) || defined(__aarch64__)) || defined(MSLEMU_UCONTEXT)
#define MSLEMU_USE_UCONTEXT 1
#if defined(__APPLE__) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700
#endif
#include <ucontext.h>
#else
#define MSLEMU_USE_UCONTEXT 0
#endif

namespace {

// ---------------------------------------------------------------------------------
// Contexts.

#if !MSLEMU_USE_UCONTEXT && defined(__x86_64__)
// x86-64 System V: save the callee-saved registers, MXCSR and the x87 control word on the
// current stack, store the stack pointer in *save, load `load` and restore the same.
asm(R"(
  .text
  .p2align 4
  .local mslemu_ctx_switch
  .type mslemu_ctx_switch,@function
mslemu_ctx_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size mslemu_ctx_switch, .-mslemu_ctx_switch
)");
extern "C" void mslemu_ctx_switch(void** save, void* load);

struct Context {
  void* sp = nullptr;
};

NOTSAN void ctx_make(Context& c, char* stack, size_t size, void (*entry)()) {
  uintptr_t top = (uintptr_t(stack) + size) & ~uintptr_t(15);
  uint64_t* p = reinterpret_cast<uint64_t*>(top);
  *--p = 0;                                // entry's return address: entry never returns
  *--p = reinterpret_cast<uint64_t>(entry);  // where the first switch "returns" to
  for (int i = 0; i < 6; i++) *--p = 0;    // rbp rbx r12 r13 r14 r15
  uint32_t mxcsr;
  uint16_t fpcw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpcw));
  *--p = uint64_t(mxcsr) | (uint64_t(fpcw) << 32);
  c.sp = p;
}

NOTSAN void ctx_switch(Context& from, Context& to) { mslemu_ctx_switch(&from.sp, to.sp); }
#elif !MSLEMU_USE_UCONTEXT && defined(__aarch64__)
// AArch64 (AAPCS64): save x19-x30 and d8-d15 on the current stack, store the stack
// pointer in *save, load `load` and restore the same; ret jumps to the restored x30.
asm(R"(
  .text
  .p2align 4
  .local mslemu_ctx_switch
  .type mslemu_ctx_switch,%function
mslemu_ctx_switch:
  sub sp, sp, #160
  stp x19, x20, [sp, #0]
  stp x21, x22, [sp, #16]
  stp x23, x24, [sp, #32]
  stp x25, x26, [sp, #48]
  stp x27, x28, [sp, #64]
  stp x29, x30, [sp, #80]
  stp d8, d9, [sp, #96]
  stp d10, d11, [sp, #112]
  stp d12, d13, [sp, #128]
  stp d14, d15, [sp, #144]
  mov x9, sp
  str x9, [x0]
  mov sp, x1
  ldp x19, x20, [sp, #0]
  ldp x21, x22, [sp, #16]
  ldp x23, x24, [sp, #32]
  ldp x25, x26, [sp, #48]
  ldp x27, x28, [sp, #64]
  ldp x29, x30, [sp, #80]
  ldp d8, d9, [sp, #96]
  ldp d10, d11, [sp, #112]
  ldp d12, d13, [sp, #128]
  ldp d14, d15, [sp, #144]
  add sp, sp, #160
  ret
  .size mslemu_ctx_switch, .-mslemu_ctx_switch
)");
extern "C" void mslemu_ctx_switch(void** save, void* load);

struct Context {
  void* sp = nullptr;
};

NOTSAN void ctx_make(Context& c, char* stack, size_t size, void (*entry)()) {
  uintptr_t top = (uintptr_t(stack) + size) & ~uintptr_t(15);
  uint64_t* p = reinterpret_cast<uint64_t*>(top - 160);
  for (int i = 0; i < 20; i++) p[i] = 0;
  p[11] = reinterpret_cast<uint64_t>(entry);  // x30: where the first switch returns to
  c.sp = p;
}

NOTSAN void ctx_switch(Context& from, Context& to) { mslemu_ctx_switch(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};

void ctx_make(Context& c, char* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}

inline void ctx_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

// ---------------------------------------------------------------------------------
// State of a launch. One launch runs at a time (g_launch_mu), on the thread that called
// mslemu_launch; everything below belongs to it.

enum State { READY, RUNNING, WAIT_TG, WAIT_SG, DONE, FAILING };

struct Site {
  const char* op = nullptr;
  const char* file = nullptr;
  int line = 0;
};

NOTSAN bool same_site(const Site& a, const Site& b) {
  if (a.line != b.line) return false;
  if (a.op != b.op && strcmp(a.op, b.op) != 0) return false;
  return a.file == b.file || strcmp(a.file, b.file) == 0;
}

// A path as the kernels' __builtin_FILE gives it, without leading ../ and ./ parts.
NOTSAN const char* short_path(const char* f) {
  if (!f) return "?";
  for (;;) {
    if (strncmp(f, "../", 3) == 0) {
      f += 3;
    } else if (strncmp(f, "./", 2) == 0) {
      f += 2;
    } else {
      return f;
    }
  }
}

NOTSAN std::string site_str(const Site& s) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s at %s:%d", s.op ? s.op : "?", short_path(s.file), s.line);
  return buf;
}

struct Fiber {
  Context ctx;
  mslemu_thread info;
  State state = READY;
  Site site;         // where it waits, or where it failed
  uint32_t seq = 0;  // SIMD exchanges done: the parity picks the half of the area
  char* stack = nullptr;
  size_t stack_size = 0;
#if MSLEMU_TSAN
  void* tsan = nullptr;
#endif
};

struct SimdGroup {
  int first = 0;       // tid of lane 0
  int active = 0;      // lanes
  int arrived = 0;     // lanes waiting in the current exchange
  int done = 0;        // lanes that returned
  int tg_waiting = 0;  // lanes waiting at a threadgroup barrier
  Site site;           // the exchange lanes wait in
  size_t bytes = 0;
  alignas(64) unsigned char area[2][MSLEMU_SIMD_WIDTH * MSLEMU_SLOT_BYTES];
};

struct Runtime {
  std::vector<Fiber*> fibers;  // pool, grown on demand, reused across launches
  size_t stack_size = 0;
  SimdGroup sgs[MSLEMU_MAX_THREADS / MSLEMU_SIMD_WIDTH];
  Context sched;
#if MSLEMU_TSAN
  void* sched_tsan = nullptr;
  char tg_sync;     // address for barrier happens-before edges
  char sched_sync;  // threads -> the scheduler's poisoning of threadgroup memory
#endif

  // The launch.
  mslemu_kernel_fn fn = nullptr;
  const char* kernel = nullptr;
  void* bufs[64];
  size_t buf_size[64];
  bool buf_bound[64];
  int n = 0;  // threads per threadgroup
  int nsg = 0;
  mslemu_prep prep;  // the function constants defined for this launch
  uint32_t group[3];
  int order[MSLEMU_MAX_THREADS];  // rank -> tid
  int rank[MSLEMU_MAX_THREADS];   // tid -> rank
  int queue[MSLEMU_MAX_THREADS + 1];
  int qhead = 0, qtail = 0;
  Fiber* cur = nullptr;
  int tg_arrived = 0;
  Site tg_site;
  int done = 0;

  bool failed = false;
  std::string error;     // the last launch's error, returned to Go
  std::string fail_msg;  // built by the scheduler from the fields below
  char fail_what[1024];
  int fail_tid = -1;
};

// Never destroyed (their destructors would race with a launch at process exit).
Runtime& g_rt = *new Runtime;
// Buffers are allocated, filled and freed by Go on any thread; edges through this order
// that with the launch for ThreadSanitizer.
char g_buf_sync;
std::mutex& g_launch_mu = *new std::mutex;

#if defined(__linux__)
// The kernels' threadgroup variables (see the shim's `threadgroup`); the linker defines
// these bounds when the section exists.
extern "C" char __start_mslemu_tg[] __attribute__((weak));
extern "C" char __stop_mslemu_tg[] __attribute__((weak));

NOTSAN void poison_threadgroup_memory() {
#if MSLEMU_TSAN
  __tsan_acquire(&g_rt.sched_sync);  // after every access of the threads that ran before
#endif
  if (__start_mslemu_tg && __stop_mslemu_tg) memset(__start_mslemu_tg, 0xff, size_t(__stop_mslemu_tg - __start_mslemu_tg));
#if MSLEMU_TSAN
  __tsan_release(&g_rt.tg_sync);
#endif
}
#else
void poison_threadgroup_memory() {}
#endif

// ---------------------------------------------------------------------------------
// Faults and timeouts. During a launch, SIGSEGV, SIGBUS and SIGFPE raised by kernel code
// on the launch thread, and the watchdog's SIGALRM, jump back to the scheduler, which
// reports them; every other signal (Go's own nil dereferences on other threads included)
// goes to the handler that was installed before.

const int kSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGALRM};
struct sigaction g_old_action[NSIG];
sigjmp_buf g_jmp;
pthread_t g_launch_thread;
volatile sig_atomic_t g_launch_active = 0;
volatile sig_atomic_t g_timed_out = 0;
volatile sig_atomic_t g_fault_sig = 0;
void* volatile g_fault_addr = nullptr;

void chain_signal(int sig, siginfo_t* si, void* uc) {
  struct sigaction& o = g_old_action[sig];
  if (o.sa_flags & SA_SIGINFO) {
    if (o.sa_sigaction) o.sa_sigaction(sig, si, uc);
    return;
  }
  if (o.sa_handler == SIG_IGN) return;
  if (o.sa_handler == SIG_DFL) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  o.sa_handler(sig);
}

void on_signal(int sig, siginfo_t* si, void* uc) {
  bool mine = g_launch_active && pthread_equal(pthread_self(), g_launch_thread);
  if (mine && sig == SIGALRM) {
    if (!g_timed_out) {
      chain_signal(sig, si, uc);
      return;
    }
    if (g_rt.cur == nullptr) return;  // in the scheduler: it checks g_timed_out
    g_fault_sig = sig;
    siglongjmp(g_jmp, 1);
  }
  if (mine && g_rt.cur != nullptr) {
    g_fault_sig = sig;
    g_fault_addr = si->si_addr;
    siglongjmp(g_jmp, 1);
  }
  chain_signal(sig, si, uc);
}

void install_handlers() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : kSignals) sigaction(sig, &sa, &g_old_action[sig]);
}

void restore_handlers() {
  for (int sig : kSignals) sigaction(sig, &g_old_action[sig], nullptr);
}

// The watchdog: one thread, started on the first launch, that sends SIGALRM to the launch
// thread when a launch outlives its deadline.
// Never destroyed: at process exit the watchdog still waits on them, and destroying a
// condition variable with a waiter blocks forever.
std::mutex& g_wd_mu = *new std::mutex;
std::condition_variable& g_wd_cv = *new std::condition_variable;
uint64_t g_wd_launch = 0;  // id of the running launch, 0 when none
std::chrono::steady_clock::time_point g_wd_deadline;

void watchdog() {
  std::unique_lock<std::mutex> lock(g_wd_mu);
  for (;;) {
    if (g_wd_launch == 0) {
      g_wd_cv.wait(lock);
      continue;
    }
    uint64_t id = g_wd_launch;
    if (g_wd_cv.wait_until(lock, g_wd_deadline) == std::cv_status::timeout && g_wd_launch == id &&
        !g_timed_out) {
      g_timed_out = 1;
      pthread_kill(g_launch_thread, SIGALRM);
    }
  }
}

void watch(uint64_t id, double seconds) {
  static std::once_flag started;
  std::call_once(started, [] { std::thread(watchdog).detach(); });
  std::lock_guard<std::mutex> lock(g_wd_mu);
  g_wd_launch = seconds > 0 ? id : 0;
  if (seconds > 0) {
    g_wd_deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(seconds));
  }
  g_wd_cv.notify_all();
}

void unwatch() {
  std::lock_guard<std::mutex> lock(g_wd_mu);
  g_wd_launch = 0;
  g_wd_cv.notify_all();
}

NOTSAN void push_ready(int tid) {
  Runtime& r = g_rt;
  r.fibers[tid]->state = READY;
  r.queue[r.qtail] = tid;
  r.qtail = (r.qtail + 1) % (MSLEMU_MAX_THREADS + 1);
}

NOTSAN bool pop_ready(int* tid) {
  Runtime& r = g_rt;
  if (r.qhead == r.qtail) return false;
  *tid = r.queue[r.qhead];
  r.qhead = (r.qhead + 1) % (MSLEMU_MAX_THREADS + 1);
  return true;
}

NOTSAN void switch_to_scheduler(Fiber* f) {
#if MSLEMU_TSAN
  __tsan_release(&g_rt.sched_sync);
  __tsan_switch_to_fiber(g_rt.sched_tsan, __tsan_switch_to_fiber_no_sync);
#endif
  ctx_switch(f->ctx, g_rt.sched);
}

// Ends the launch from inside fiber f: the scheduler builds the report and never
// resumes the fiber.
NOTSAN __attribute__((noreturn, format(printf, 2, 3))) void fail_fiber(Fiber* f, const char* fmt,
                                                                        ...) {
  Runtime& r = g_rt;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r.fail_what, sizeof r.fail_what, fmt, ap);
  va_end(ap);
  r.failed = true;
  r.fail_tid = int(f->info.thread_index_in_threadgroup);
  f->state = FAILING;
#if MSLEMU_TSAN
  __tsan_release(&r.fail_what);
#endif
  switch_to_scheduler(f);
  abort();  // never resumed
}

NOTSAN void fiber_main();

NOTSAN void fiber_done(Fiber* f) {
  Runtime& r = g_rt;
  SimdGroup& sg = r.sgs[f->info.simdgroup_index_in_threadgroup];
  f->state = DONE;
  f->site = Site{"return", nullptr, 0};
  r.done++;
  sg.done++;
  if (r.tg_arrived > 0) {
    fail_fiber(f, "thread %d returned while %d thread(s) wait in %s", int(f->info.thread_index_in_threadgroup),
               r.tg_arrived, site_str(r.tg_site).c_str());
  }
  if (sg.arrived > 0) {
    fail_fiber(f, "thread %d returned while %d lane(s) of its SIMD group wait in %s",
               int(f->info.thread_index_in_threadgroup), sg.arrived, site_str(sg.site).c_str());
  }
  switch_to_scheduler(f);
  abort();
}

NOTSAN void run_kernel(Fiber* f) { g_rt.fn(&f->info, g_rt.bufs); }

NOTSAN void fiber_main() {
  Fiber* f = g_rt.cur;
#if MSLEMU_TSAN
  __tsan_acquire(&g_rt.tg_sync);
#endif
  run_kernel(f);
  fiber_done(f);
}

NOTSAN void release_sg_lanes(SimdGroup& sg) {
  Runtime& r = g_rt;
  int lanes[MSLEMU_SIMD_WIDTH], k = 0;
  for (int i = 0; i < sg.active; i++) {
    int tid = sg.first + i;
    if (r.fibers[tid]->state == WAIT_SG) lanes[k++] = tid;
  }
  for (int i = 1; i < k; i++) {  // insertion sort by rank (no lambda: it would be instrumented)
    int v = lanes[i], j = i;
    for (; j > 0 && r.rank[lanes[j - 1]] > r.rank[v]; j--) lanes[j] = lanes[j - 1];
    lanes[j] = v;
  }
  for (int i = 0; i < k; i++) push_ready(lanes[i]);
}

}  // namespace

// ---------------------------------------------------------------------------------
// Called by the shim.

extern "C" NOTSAN const mslemu_thread* mslemu_self(void) { return &g_rt.cur->info; }

extern "C" NOTSAN void mslemu_threadgroup_barrier(const char* op, const char* file, int line) {
  Runtime& r = g_rt;
  Fiber* f = r.cur;
  SimdGroup& sg = r.sgs[f->info.simdgroup_index_in_threadgroup];
  Site here{op, file, line};
  f->site = here;
  int tid = int(f->info.thread_index_in_threadgroup);
  if (r.done > 0) {
    fail_fiber(f, "thread %d waits in %s after %d thread(s) of its threadgroup returned", tid,
               site_str(here).c_str(), r.done);
  }
  if (sg.arrived > 0) {
    fail_fiber(f, "thread %d waits in %s while %d lane(s) of its SIMD group wait in %s", tid,
               site_str(here).c_str(), sg.arrived, site_str(sg.site).c_str());
  }
  if (r.tg_arrived > 0 && !same_site(here, r.tg_site)) {
    fail_fiber(f, "threads wait at different barriers: thread %d in %s, %d other(s) in %s", tid,
               site_str(here).c_str(), r.tg_arrived, site_str(r.tg_site).c_str());
  }
  if (r.tg_arrived == 0) r.tg_site = here;
  f->state = WAIT_TG;
  r.tg_arrived++;
  sg.tg_waiting++;
#if MSLEMU_TSAN
  __tsan_release(&r.tg_sync);
#endif
  if (r.tg_arrived == r.n) {
    r.tg_arrived = 0;
    for (int i = 0; i < r.nsg; i++) r.sgs[i].tg_waiting = 0;
    for (int k = 0; k < r.n; k++) push_ready(r.order[k]);
  }
  switch_to_scheduler(f);
#if MSLEMU_TSAN
  __tsan_acquire(&r.tg_sync);
#endif
}

extern "C" NOTSAN const unsigned char* mslemu_simd_exchange(const void* mine, size_t n, const char* op,
                                                    const char* file, int line) {
  Runtime& r = g_rt;
  Fiber* f = r.cur;
  SimdGroup& sg = r.sgs[f->info.simdgroup_index_in_threadgroup];
  Site here{op, file, line};
  f->site = here;
  int tid = int(f->info.thread_index_in_threadgroup);
  if (n > MSLEMU_SLOT_BYTES) {
    fail_fiber(f, "thread %d: %s on a %zu-byte value (at most %d)", tid, site_str(here).c_str(), n,
               MSLEMU_SLOT_BYTES);
  }
  if (sg.done > 0) {
    fail_fiber(f, "thread %d calls %s after %d lane(s) of its SIMD group returned", tid,
               site_str(here).c_str(), sg.done);
  }
  if (sg.tg_waiting > 0) {
    fail_fiber(f, "thread %d calls %s while %d lane(s) of its SIMD group wait in %s", tid,
               site_str(here).c_str(), sg.tg_waiting, site_str(r.tg_site).c_str());
  }
  if (sg.arrived > 0 && (!same_site(here, sg.site) || sg.bytes != n)) {
    fail_fiber(f, "lanes of a SIMD group diverge: thread %d calls %s while %d lane(s) wait in %s", tid,
               site_str(here).c_str(), sg.arrived, site_str(sg.site).c_str());
  }
  if (sg.arrived == 0) {
    sg.site = here;
    sg.bytes = n;
  }
  unsigned char* area = sg.area[f->seq & 1];
  f->seq++;
  unsigned char* slot = area + size_t(f->info.thread_index_in_simdgroup) * MSLEMU_SLOT_BYTES;
  if (n > 0) memcpy(slot, mine, n);
  sg.arrived++;
#if MSLEMU_TSAN
  __tsan_release(&sg);
#endif
  if (sg.arrived == sg.active) {
    // The last lane releases the others and goes on without a switch.
    sg.arrived = 0;
    release_sg_lanes(sg);
  } else {
    f->state = WAIT_SG;
    switch_to_scheduler(f);
  }
#if MSLEMU_TSAN
  __tsan_acquire(&sg);
#endif
  return area;
}

extern "C" NOTSAN void mslemu_fail(const char* msg, const char* file, int line) {
  Fiber* f = g_rt.cur;
  f->site = Site{"mslemu_fail", file, line};
  fail_fiber(f, "thread %d at %s:%d: %s", int(f->info.thread_index_in_threadgroup), short_path(file), line,
             msg);
}

// ---------------------------------------------------------------------------------
// Launch.

namespace {

std::string errorf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string errorf(const char* fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

// What thread t is doing, for the dump.
NOTSAN std::string describe(const Fiber* f) {
  switch (f->state) {
    case READY:
      return f->site.op ? "ready, last synchronised in " + site_str(f->site) : "not started";
    case RUNNING:
      return g_fault_sig ? "interrupted here (see above)" : "running";
    case WAIT_TG:
    case WAIT_SG:
      return "waiting in " + site_str(f->site);
    case DONE:
      return "returned";
    case FAILING:
      return f->site.file ? "failed in " + site_str(f->site) : "returned (the error above)";
  }
  return "?";
}

// "tid 0..15 waiting in simd_sum at attention.metal:38", one line per run of threads in
// the same state.
NOTSAN std::string dump_threads() {
  Runtime& r = g_rt;
  std::string out;
  int start = 0;
  std::string cur = describe(r.fibers[0]);
  for (int t = 1; t <= r.n; t++) {
    std::string d = t < r.n ? describe(r.fibers[t]) : std::string();
    if (t < r.n && d == cur) continue;
    if (t - 1 == start) {
      out += errorf("\n  tid %d: ", start);
    } else {
      out += errorf("\n  tid %d..%d: ", start, t - 1);
    }
    out += cur;
    start = t;
    cur = d;
  }
  return out;
}

NOTSAN std::string report(const char* what) {
  Runtime& r = g_rt;
  return errorf("%s: threadgroup (%u,%u,%u): %s", r.kernel, r.group[0], r.group[1], r.group[2], what) +
         dump_threads();
}

// One inaccessible page per buffer slot, bound to the slots a launch leaves unbound.
char* unbound_pages() {
  static char* pages = [] {
    void* p = mmap(nullptr, 64 * size_t(sysconf(_SC_PAGESIZE)), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }();
  return pages;
}

size_t stack_bytes() {
  size_t kib = 256;
  if (const char* e = getenv("MSLEMU_STACK_KIB")) {
    long v = atol(e);
    if (v >= 16) kib = size_t(v);
  }
  return kib * 1024;
}

NOTSAN bool grow_pool(int n, std::string* err) {
  Runtime& r = g_rt;
  if (r.stack_size == 0) r.stack_size = stack_bytes();
  long page = sysconf(_SC_PAGESIZE);
  while (int(r.fibers.size()) < n) {
    size_t total = r.stack_size + size_t(page);
    void* mem = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (mem == MAP_FAILED) {
      *err = errorf("mmap of a %zu-byte fiber stack: %s", total, strerror(errno));
      return false;
    }
    mprotect(mem, size_t(page), PROT_NONE);  // guard page below the stack
    Fiber* f = new Fiber;
    f->stack = static_cast<char*>(mem) + page;
    f->stack_size = r.stack_size;
#if MSLEMU_TSAN
    f->tsan = __tsan_create_fiber(0);
#endif
    r.fibers.push_back(f);
  }
  return true;
}

// What the signal that ended the launch means, named after the thread it stopped.
NOTSAN std::string signal_what() {
  Runtime& r = g_rt;
  int tid = r.cur ? int(r.cur->info.thread_index_in_threadgroup) : -1;
  if (g_fault_sig == SIGALRM) {
    return errorf(
        "timed out: thread %d was still running with no barrier or SIMD function to wait in "
        "(an endless loop, or a thread spinning on memory another thread writes, which deadlocks "
        "on a GPU too)",
        tid);
  }
  if (g_fault_sig == SIGFPE) return errorf("thread %d: arithmetic trap (integer division by zero?)", tid);
  uintptr_t a = uintptr_t(g_fault_addr);
  long page = sysconf(_SC_PAGESIZE);
  for (int i = 0; i < 64; i++) {
    uintptr_t b = uintptr_t(r.bufs[i]);
    if (!r.buf_bound[i]) {
      if (a >= b && a < b + uintptr_t(page)) {
        return errorf("thread %d: access to buffer %d, which the launch leaves unbound", tid, i);
      }
      continue;
    }
    uintptr_t end = b + r.buf_size[i];
    if (a >= end && a < ((end + 15) & ~uintptr_t(15)) + uintptr_t(page)) {
      return errorf("thread %d: access %zu bytes past the end of buffer %d (%zu bytes)", tid, size_t(a - end), i,
                    r.buf_size[i]);
    }
    if (a >= b && a < end) {
      return errorf("thread %d: access to buffer %d at byte %zu faulted", tid, i, size_t(a - b));
    }
  }
  if (r.cur != nullptr) {
    uintptr_t lo = uintptr_t(r.cur->stack);
    if (a + uintptr_t(page) >= lo && a < lo) {
      return errorf("thread %d: stack overflow (%zu KiB per thread; set MSLEMU_STACK_KIB)", tid,
                    r.cur->stack_size / 1024);
    }
  }
  if (a < uintptr_t(page)) return errorf("thread %d: null pointer access (address %p)", tid, (void*)a);
  return errorf("thread %d: %s at address %p (outside every buffer)", tid,
                g_fault_sig == SIGBUS ? "bus error" : "segmentation fault", (void*)a);
}

// Runs one threadgroup to the end; false (and r.fail_msg) on failure.
NOTSAN bool run_group(const uint32_t tg[3], const uint32_t groups[3], const uint32_t tptg[3]) {
  Runtime& r = g_rt;
  r.group[0] = tg[0];
  r.group[1] = tg[1];
  r.group[2] = tg[2];
  for (int tid = 0; tid < r.n; tid++) {
    Fiber* f = r.fibers[tid];
    mslemu_thread& t = f->info;
    uint32_t pos[3] = {uint32_t(tid) % tptg[0], (uint32_t(tid) / tptg[0]) % tptg[1],
                       uint32_t(tid) / (tptg[0] * tptg[1])};
    for (int d = 0; d < 3; d++) {
      t.thread_position_in_threadgroup[d] = pos[d];
      t.threadgroup_position_in_grid[d] = tg[d];
      t.threads_per_threadgroup[d] = tptg[d];
      t.threadgroups_per_grid[d] = groups[d];
      t.thread_position_in_grid[d] = tg[d] * tptg[d] + pos[d];
      t.threads_per_grid[d] = groups[d] * tptg[d];
    }
    t.thread_index_in_threadgroup = uint32_t(tid);
    t.thread_index_in_simdgroup = uint32_t(tid % MSLEMU_SIMD_WIDTH);
    t.simdgroup_index_in_threadgroup = uint32_t(tid / MSLEMU_SIMD_WIDTH);
    t.simdgroups_per_threadgroup = uint32_t(r.nsg);
    t.threads_per_simdgroup = MSLEMU_SIMD_WIDTH;
    t.active_lanes = uint32_t(std::min(MSLEMU_SIMD_WIDTH, r.n - tid / MSLEMU_SIMD_WIDTH * MSLEMU_SIMD_WIDTH));
    f->state = READY;
    f->site = Site{};
    f->seq = 0;
    // Stagger the stack tops by cache lines: page-aligned tops would put every thread's
    // hot frames in the same L1 sets.
    ctx_make(f->ctx, f->stack, f->stack_size - size_t(tid % 64) * 64, fiber_main);
  }
  for (int i = 0; i < r.nsg; i++) {
    SimdGroup& sg = r.sgs[i];
    sg.first = i * MSLEMU_SIMD_WIDTH;
    sg.active = std::min(MSLEMU_SIMD_WIDTH, r.n - sg.first);
    sg.arrived = sg.done = sg.tg_waiting = 0;
    sg.site = Site{};
    sg.bytes = 0;
  }
  poison_threadgroup_memory();
  r.qhead = r.qtail = 0;
  for (int k = 0; k < r.n; k++) push_ready(r.order[k]);
  r.tg_arrived = 0;
  r.tg_site = Site{};
  r.done = 0;
  r.failed = false;

  if (sigsetjmp(g_jmp, 1) != 0) {
#if MSLEMU_TSAN
    __tsan_switch_to_fiber(r.sched_tsan, __tsan_switch_to_fiber_no_sync);
#endif
    r.fail_msg = report(signal_what().c_str());
    r.cur = nullptr;
    return false;
  }
  int tid;
  for (;;) {
    if (g_timed_out) {
      r.fail_msg = report("timed out");
      return false;
    }
    if (!pop_ready(&tid)) {
      if (r.done == r.n) return true;
      r.fail_msg = report("deadlock: every thread is blocked");
      return false;
    }
    Fiber* f = r.fibers[tid];
    r.cur = f;
    f->state = RUNNING;
#if MSLEMU_TSAN
    __tsan_switch_to_fiber(f->tsan, __tsan_switch_to_fiber_no_sync);
#endif
    ctx_switch(r.sched, f->ctx);
    r.cur = nullptr;
    if (r.failed) {
#if MSLEMU_TSAN
      __tsan_acquire(&r.fail_what);
#endif
      r.fail_msg = report(r.fail_what);
      return false;
    }
  }
}

}  // namespace

extern "C" NOTSAN int mslemu_fc_defined(const void* addr) {
  const mslemu_prep& p = g_rt.prep;
  for (int i = 0; i < p.ndefined; i++)
    if (p.defined[i] == addr) return 1;
  return 0;
}

extern "C" NOTSAN int mslemu_launch(int k, const uint32_t groups[3], const uint32_t tptg[3],
                             const mslemu_buffer* buffers, int nbuffers, const mslemu_const* consts,
                             int nconsts, const mslemu_options* opts, const char** err) {
  std::lock_guard<std::mutex> lock(g_launch_mu);
  Runtime& r = g_rt;
  std::string msg;
  *err = nullptr;
  // The message stays in g_rt.error until the next launch: no allocation crosses threads.
  auto fail = [&](const std::string& m) {
    r.error = m;
    *err = r.error.c_str();
    return -1;
  };
  if (k < 0 || k >= mslemu_nkernels) return fail(errorf("no kernel %d", k));
  const mslemu_kernel& kern = mslemu_kernels[k];
  if (kern.fn == nullptr || kern.prep == nullptr) {
    return fail(errorf("%s: not compiled: %s is missing; run go generate ./tools/mslemu", kern.name, kern.source));
  }
  uint64_t threads = uint64_t(tptg[0]) * tptg[1] * tptg[2];
  if (threads == 0 || threads > MSLEMU_MAX_THREADS) {
    return fail(errorf("%s: %llu threads per threadgroup (want 1..%d)", kern.name, (unsigned long long)threads,
                       MSLEMU_MAX_THREADS));
  }
  // Function constants and the launch hint. The constants are globals of the kernel's
  // translation unit: sound because launches are serialised (g_launch_mu) and every
  // emulated thread runs as a fiber on this OS thread.
  r.prep = mslemu_prep{};
  r.prep.consts = consts;
  r.prep.nconsts = consts ? nconsts : 0;
  if (kern.prep(&r.prep) != 0) {
    std::string m = errorf("%s: %s", kern.name, r.prep.err);
    r.prep = mslemu_prep{};
    return fail(m);
  }
  if (r.prep.max_threads != 0 && threads > r.prep.max_threads) {
    unsigned mt = r.prep.max_threads;
    r.prep = mslemu_prep{};
    return fail(errorf("%s: %llu threads per threadgroup exceed the kernel's "
                       "[[max_total_threads_per_threadgroup(%u)]]",
                       kern.name, (unsigned long long)threads, mt));
  }
  // An unbound slot points at an inaccessible page: a kernel may declare a buffer it does
  // not read (as on Metal), and an access is reported as a fault.
  for (int i = 0; i < 64; i++) {
    r.bufs[i] = unbound_pages() + size_t(i) * size_t(sysconf(_SC_PAGESIZE));
    r.buf_size[i] = 0;
    r.buf_bound[i] = false;
    if (i < nbuffers && buffers[i].data != nullptr) {
      r.bufs[i] = buffers[i].data;
      r.buf_size[i] = buffers[i].size;
      r.buf_bound[i] = true;
    }
  }
  r.n = int(threads);
  r.nsg = (r.n + MSLEMU_SIMD_WIDTH - 1) / MSLEMU_SIMD_WIDTH;
  if (!grow_pool(r.n, &msg)) return fail(msg);
  r.fn = kern.fn;
  r.kernel = kern.name;
#if MSLEMU_TSAN
  r.sched_tsan = __tsan_get_current_fiber();
  __tsan_acquire(&g_buf_sync);
#endif

  std::mt19937_64 rng(opts ? opts->seed : 0);
  int order = opts ? opts->order : MSLEMU_ORDER_FORWARD;
  for (int i = 0; i < r.n; i++) r.order[i] = order == MSLEMU_ORDER_REVERSE ? r.n - 1 - i : i;

  static uint64_t launches = 0;
  g_launch_thread = pthread_self();
  g_timed_out = 0;
  g_fault_sig = 0;
  g_fault_addr = nullptr;
  install_handlers();
  g_launch_active = 1;
  watch(++launches, opts ? opts->timeout_seconds : 0);

  bool ok = true;
  uint32_t tg[3];
  for (tg[2] = 0; ok && tg[2] < groups[2]; tg[2]++) {
    for (tg[1] = 0; ok && tg[1] < groups[1]; tg[1]++) {
      for (tg[0] = 0; ok && tg[0] < groups[0]; tg[0]++) {
        if (order == MSLEMU_ORDER_SHUFFLE) std::shuffle(r.order, r.order + r.n, rng);
        for (int i = 0; i < r.n; i++) r.rank[r.order[i]] = i;
        ok = run_group(tg, groups, tptg);
      }
    }
  }

  unwatch();
  if (g_timed_out) {
    // Drain a SIGALRM the watchdog sent that is still pending, before Go's handler is back.
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    struct timespec zero = {0, 0};
    sigtimedwait(&set, nullptr, &zero);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  g_launch_active = 0;
  restore_handlers();
#if MSLEMU_TSAN
  __tsan_acquire(&r.sched_sync);
  __tsan_release(&g_buf_sync);
#endif
  r.fn = nullptr;
  r.prep.consts = nullptr;
  r.prep.nconsts = 0;
  return ok ? 0 : fail(r.fail_msg);
}

extern "C" NOTSAN void* mslemu_buffer_alloc(size_t size) {
  long page = sysconf(_SC_PAGESIZE);
  size_t data = (size + 15) & ~size_t(15);
  size_t span = (data + size_t(page) - 1) / size_t(page) * size_t(page);
  size_t total = span + size_t(page);
  void* mem = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  char* base = static_cast<char*>(mem);
  mprotect(base + span, size_t(page), PROT_NONE);  // guard page after the end
#if MSLEMU_TSAN
  __tsan_release(&g_buf_sync);
#endif
  return base + span - data;
}

extern "C" NOTSAN void mslemu_buffer_free(void* p, size_t size) {
  if (!p) return;
#if MSLEMU_TSAN
  __tsan_acquire(&g_buf_sync);
#endif
  long page = sysconf(_SC_PAGESIZE);
  size_t data = (size + 15) & ~size_t(15);
  size_t span = (data + size_t(page) - 1) / size_t(page) * size_t(page);
  char* base = static_cast<char*>(p) + data - span;
  munmap(base, span + size_t(page));
}

extern "C" int mslemu_kernel_count(void) { return mslemu_nkernels; }
extern "C" const mslemu_kernel* mslemu_kernel_at(int i) { return &mslemu_kernels[i]; }
extern "C" const char* mslemu_source_list(void) { return mslemu_sources; }
