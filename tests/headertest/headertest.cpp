// Header test as C++: the same program as headertest.c, compiled as C++.
#include "headertest.c"
