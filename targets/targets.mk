# targets/targets.mk - build matrix for the C target programs.
#
# Included by the top-level Makefile (which sets BUILD ?= build); also works
# stand-alone:  make -f targets/targets.mk targets
#
# Every target in every build goes to $(BUILD)/targets/<build>/<name>.
# Flags are the compilers' defaults plus the build's -O level and -g: no
# -fno-omit-frame-pointer, no warnings flags - the point is realistic code.
#
# Goals:  targets          every target in every build (the full matrix)
#         targets-default  every target in gcc-O0 and gcc-O2
#         targets-<build>  one build, e.g. targets-musl-O2
#         targets-clean    remove $(BUILD)/targets
#         $(BUILD)/targets/<build>/<name>   one binary (what the Go tests ask for)
#
# Quiet by default (only compiler diagnostics are printed); V=1 shows the
# commands. See targets/README.md for what each target shows.

BUILD ?= build
V     ?= 0
ifeq ($(V),0)
TARGETS_Q := @
else
TARGETS_Q :=
endif
TARGETS_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

TARGETS := badvfork rawvfork deepvfork fnptrvfork writelocal exitvfork \
           sigchild nestedvfork goodvfork_exec goodvfork_exit spawn system \
           popen clonevfork clone3vfork threadvfork spin spawnloop stepref \
           spawnfail vforkwait memsetread printchild vzeroret longjmpvfork \
           vforkloop vforkcompute cloneflags vforkattrs jitvfork \
           trapchild traphandler spinwrite hwcallwriter sigchldfollow \
           pushfvfork forkinchild waitstatus writebuf \
           vforkerrno vforksigmask spawnattrs vforkexecvp vforkpid \
           vforkpending globalreset clonevforkcopy

# Reproductions of real, documented vfork bugs (targets/catalogue/*.c,
# docs/catalogue.md); built like the others, into the same directories.
TARGETS_CATALOGUE := rr3270_popfw fastio1141_helper embox2050_slot \
                     go20427_signal nix16119_global rr1595_stack

# C++ targets (targets/*.cc), built with the C++ compiler of the build's
# family and the same flags.
TARGETS_CXX := throwvfork

BUILDS := gcc-O0 gcc-O2 clang-O0 clang-O2 gcc-O0-nopie clang-O2-nopie \
          gcc-O0-static gcc-O2-static musl-O0 musl-O2 \
          gcc-O0-m32 gcc-O2-m32 gcc-O0-m32-static gcc-O2-m32-static

TARGETS_DEFAULT_BUILDS := gcc-O0 gcc-O2

# Per-build compiler and flags (CFLAGS_<build> is used for compiling and linking).
CC_gcc-O0            := gcc
CFLAGS_gcc-O0        := -O0 -g
CC_gcc-O2            := gcc
CFLAGS_gcc-O2        := -O2 -g
CC_clang-O0          := clang
CFLAGS_clang-O0      := -O0 -g
CC_clang-O2          := clang
CFLAGS_clang-O2      := -O2 -g
CC_gcc-O0-nopie      := gcc
CFLAGS_gcc-O0-nopie  := -O0 -g -fno-pie -no-pie
CC_clang-O2-nopie    := clang
CFLAGS_clang-O2-nopie := -O2 -g -fno-pie -no-pie
CC_gcc-O0-static     := gcc
CFLAGS_gcc-O0-static := -O0 -g -static
CC_gcc-O2-static     := gcc
CFLAGS_gcc-O2-static := -O2 -g -static
CC_musl-O0           := musl-gcc
CFLAGS_musl-O0       := -O0 -g -static
CC_musl-O2           := musl-gcc
CFLAGS_musl-O2       := -O2 -g -static
CC_gcc-O0-m32        := gcc
CFLAGS_gcc-O0-m32    := -m32 -O0 -g
CC_gcc-O2-m32        := gcc
CFLAGS_gcc-O2-m32    := -m32 -O2 -g
CC_gcc-O0-m32-static := gcc
CFLAGS_gcc-O0-m32-static := -m32 -O0 -g -static
CC_gcc-O2-m32-static := gcc
CFLAGS_gcc-O2-m32-static := -m32 -O2 -g -static

# The C++ compiler of each build (none for musl: musl-gcc has no C++
# library here, so the C++ targets are left out of the musl builds).
$(foreach b,$(filter gcc-%,$(BUILDS)),$(eval CXX_$(b) := g++))
$(foreach b,$(filter clang-%,$(BUILDS)),$(eval CXX_$(b) := clang++))

# Per-target extras.
LDLIBS_threadvfork := -pthread
DEPS_spin          := $(TARGETS_DIR)/spin.h
DEPS_stepref       := $(TARGETS_DIR)/spin.h

# Targets left out of a build, with the reason. Every C target builds, and
# was run, in every build (Debian 12: gcc 12, clang 14, musl 1.2.3, glibc
# 2.36). clone3vfork declares its own struct clone_args because musl has no
# <linux/sched.h>, and has its own i386 int $0x80 path for the -m32 builds;
# threadvfork links with -pthread everywhere, musl too. The C++ targets need
# a C++ compiler of the build's family: none for musl (CXX_musl-* unset).
# The -m32 C++ builds need g++-multilib (scripts/install-deps.sh).
# Example:  TARGETS_EXCLUDE_musl-O0 := clone3vfork   # why it cannot build
TARGETS_OF = $(filter-out $(TARGETS_EXCLUDE_$(1)),$(TARGETS) $(TARGETS_CATALOGUE) \
               $(if $(CXX_$(1)),$(TARGETS_CXX)))

# $(call TARGETS_BUILD_RULES,<build>)
define TARGETS_BUILD_RULES
TARGETS_BINS_$(1) := $$(addprefix $$(BUILD)/targets/$(1)/,$$(call TARGETS_OF,$(1)))

$$(addprefix $$(BUILD)/targets/$(1)/,$$(filter $$(TARGETS),$$(call TARGETS_OF,$(1)))): $$(BUILD)/targets/$(1)/%: $$(TARGETS_DIR)/%.c $$(TARGETS_DIR)/targets.mk
	@mkdir -p $$(@D)
	$$(TARGETS_Q)$$(CC_$(1)) $$(CFLAGS_$(1)) -o $$@ $$< $$(LDLIBS_$$*)

$$(addprefix $$(BUILD)/targets/$(1)/,$$(filter $$(TARGETS_CATALOGUE),$$(call TARGETS_OF,$(1)))): $$(BUILD)/targets/$(1)/%: $$(TARGETS_DIR)/catalogue/%.c $$(TARGETS_DIR)/targets.mk
	@mkdir -p $$(@D)
	$$(TARGETS_Q)$$(CC_$(1)) $$(CFLAGS_$(1)) -o $$@ $$< $$(LDLIBS_$$*)

$$(addprefix $$(BUILD)/targets/$(1)/,$$(filter $$(TARGETS_CXX),$$(call TARGETS_OF,$(1)))): $$(BUILD)/targets/$(1)/%: $$(TARGETS_DIR)/%.cc $$(TARGETS_DIR)/targets.mk
	@mkdir -p $$(@D)
	$$(TARGETS_Q)$$(CXX_$(1)) $$(CFLAGS_$(1)) -o $$@ $$< $$(LDLIBS_$$*)

.PHONY: targets-$(1)
targets-$(1): $$(TARGETS_BINS_$(1))
endef

$(foreach b,$(BUILDS),$(eval $(call TARGETS_BUILD_RULES,$(b))))

# Header dependencies (a prerequisite without a recipe adds to the rule above).
$(foreach b,$(BUILDS),$(foreach t,$(call TARGETS_OF,$(b)),$(if $(DEPS_$(t)),\
  $(eval $(BUILD)/targets/$(b)/$(t): $(DEPS_$(t))))))

.PHONY: targets targets-default targets-clean
targets: $(foreach b,$(BUILDS),targets-$(b))
targets-default: $(foreach b,$(TARGETS_DEFAULT_BUILDS),targets-$(b))
targets-clean:
	rm -rf $(BUILD)/targets

# attachvfork (vtrace attach's tests) waits for a file before its vfork:
# not a matrix row (targets/expect), built in gcc-O0 only.
$(BUILD)/targets/gcc-O0/attachvfork: $(TARGETS_DIR)/attachvfork.c $(TARGETS_DIR)/targets.mk
	@mkdir -p $(@D)
	$(TARGETS_Q)gcc -O0 -g -o $@ $< -pthread
targets-gcc-O0: $(BUILD)/targets/gcc-O0/attachvfork
