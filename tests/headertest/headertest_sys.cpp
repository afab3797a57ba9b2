// Header test as C++: the backend seam alone, compiled as C++.
#include "headertest_sys.c"
