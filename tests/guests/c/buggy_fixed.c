/* buggy.c with its bug fixed: GET /share/0 answers 400. */
#define FIXED
#include "buggy.c"
