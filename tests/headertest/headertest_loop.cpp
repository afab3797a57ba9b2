// Header test of the loop adapters as C++: the same program as headertest_loop.c.
#include "headertest_loop.c"
