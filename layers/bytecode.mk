# Included by the functions' and the dependencies layer's Makefiles: $(COMPILE) FOLDER
# writes the .pyc Lambda's python3.12 runtime loads. Lambda's /var/task and /opt are
# read-only, so an import can never cache byte code there: without these files every
# cold start compiles every module it imports (about half the router's init CPU,
# docs/benchmarks.md). unchecked-hash: the .pyc is trusted without a look at its source,
# which cannot change in a deployed package (and whose zip mtimes would not match).
# Compiled by Python 3.12 (sam build's own, first on PATH under `make sam-build`);
# another version's byte code would be ignored.
PYTHON ?= python3
COMPILE = $(PYTHON) -c 'import sys; sys.exit(None if sys.version_info[:2] == (3, 12) else \
	"error: byte code for Lambda python3.12 needs Python 3.12 as $(PYTHON) (run through make sam-build)")' \
	&& $(PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash
