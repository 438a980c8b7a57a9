# Thin driver over CMake, with upstream's interface:
#   make                         build everything (shim variants, tools, guest agent, tests)
#   make test                    build, then run the tests
#   make install HYPERVISOR=qemu [PREFIX=/usr] [DESTDIR=]
#   make KATA_STATIC=ON          fully static binaries
#   make demo                    build and install the qemu variant with its guest under
#                                build/demo-prefix, then run a container in a VM through a
#                                private containerd (test/integration/demo.sh)
#   make fuzz                    build the libFuzzer targets with clang and run each for
#                                FUZZ_SECONDS (CI runs it after make test)
PREFIX      ?= /usr
HYPERVISOR  ?= qemu
DESTDIR     ?=
BUILD_DIR   ?= build
BUILD_TYPE  ?= RelWithDebInfo
KATA_STATIC ?= OFF
JOBS        ?= $(shell nproc)
CTEST_ARGS  ?=
CMAKE_EXTRA ?=
FUZZ_DIR     ?= build-fuzz
FUZZ_SECONDS ?= 45

.PHONY: all configure build test install guest-image demo fuzz clean help

all: build

configure:
	cmake -S . -B $(BUILD_DIR) -G Ninja \
	  -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DCMAKE_INSTALL_PREFIX=$(PREFIX) \
	  -DKATA_HYPERVISOR=$(HYPERVISOR) \
	  -DKATA_STATIC=$(KATA_STATIC) $(CMAKE_EXTRA)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD_DIR)

guest-image: configure
	cmake --build $(BUILD_DIR) --target guest-image -j $(JOBS)

DEMO_PREFIX := $(CURDIR)/$(BUILD_DIR)/demo-prefix
demo:
	$(MAKE) --no-print-directory guest-image install PREFIX=$(DEMO_PREFIX) HYPERVISOR=qemu
	bash test/integration/demo.sh $(DEMO_PREFIX)

# Only the fuzz targets and what they link are built; the bound is FUZZ_SECONDS per fuzzer.
fuzz:
	cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DKATA_FUZZ=ON -DKATA_SANITIZE=address,fuzzer-no-link -DKATA_FUZZ_SECONDS=$(FUZZ_SECONDS) \
	  -DKATA_BUILD_GUEST=OFF -DKATA_BUILD_BENCH=OFF
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target $$(sed -n 's/^kata_add_fuzzer(\([a-z_]*\) .*/\1/p' test/fuzz/CMakeLists.txt)
	cd $(FUZZ_DIR) && ctest --output-on-failure -L fuzz

clean:
	rm -rf $(BUILD_DIR)

help:
	@sed -n '2,10p' Makefile
