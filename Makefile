# Thin driver over CMake, with upstream's interface:
#   make                         build everything (shim variants, tools, guest agent, tests)
#   make test                    build, then run the tests
#   make install HYPERVISOR=qemu [PREFIX=/usr] [DESTDIR=]
#   make KATA_STATIC=ON          fully static binaries
PREFIX      ?= /usr
HYPERVISOR  ?= qemu
DESTDIR     ?=
BUILD_DIR   ?= build
BUILD_TYPE  ?= RelWithDebInfo
KATA_STATIC ?= OFF
JOBS        ?= $(shell nproc)
CTEST_ARGS  ?=
CMAKE_EXTRA ?=

.PHONY: all configure build test install guest clean help

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

clean:
	rm -rf $(BUILD_DIR)

help:
	@sed -n '2,6p' Makefile
