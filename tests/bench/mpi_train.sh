#!/bin/sh
# bench_mpi_train under mpirun -np 2 with 1 thread each, to set against its plain run (1 rank x
# 2 threads, which make bench runs with the other benchmark binaries): a data-parallel
# training step and the MPI_Allreduce of the 35.7M-float gradient over shared memory. The
# options are those of the tests' mpirun_t (tests/cli/helpers.bash). Skipped without mpirun.
b=${BENCH_DIR:-build/bench}/bench_mpi_train
command -v mpirun > /dev/null || { echo "mpi_train: no mpirun, skipped"; exit 0; }
[ -x "$b" ] || { echo "mpi_train: no $b (make $b)"; exit 0; }
if [ "$(id -u)" = 0 ]; then
	OMPI_ALLOW_RUN_AS_ROOT=1
	OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
	export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
fi
BENCH_THREADS=1
BENCH_REPS=${BENCH_REPS:-3}
export BENCH_THREADS BENCH_REPS
mpirun -q -np "${NP:-2}" --bind-to none --mca btl self,vader \
	--mca btl_vader_single_copy_mechanism none --mca plm_rsh_agent false "$b"
