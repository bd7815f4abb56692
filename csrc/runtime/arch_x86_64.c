/* The two machine-level pieces: a raw syscall at a known address (the syscall watch
 * lets calls from there through), and a call on another stack. x86-64 only. */
#include "fs_runtime.h"

#if !defined(__x86_64__)
#error "the forkserver runtime supports x86-64 only"
#endif

__asm__(
    ".text\n"
    ".globl fs_raw_syscall\n"
    ".type fs_raw_syscall,@function\n"
    "fs_raw_syscall:\n"
    "    movq %rdi, %rax\n"
    "    movq %rsi, %rdi\n"
    "    movq %rdx, %rsi\n"
    "    movq %rcx, %rdx\n"
    "    movq %r8, %r10\n"
    "    movq %r9, %r8\n"
    "    movq 8(%rsp), %r9\n"
    ".globl fs_raw_syscall_insn\n"
    "fs_raw_syscall_insn:\n"
    "    syscall\n"
    "    ret\n"
    ".size fs_raw_syscall, .-fs_raw_syscall\n"

    ".globl fs_call_on_stack\n"
    ".type fs_call_on_stack,@function\n"
    "fs_call_on_stack:\n"
    "    movq %rdi, %rsp\n"
    "    andq $-16, %rsp\n"
    "    callq *%rsi\n"
    "    ud2\n"
    ".size fs_call_on_stack, .-fs_call_on_stack\n");
