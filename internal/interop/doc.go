// Package interop holds tests that run the original report's Python code
// (testdata/original) against TES: its police client against our officer
// server, and our client against its officer server. They need Debian's
// python3 with python3-pycryptodome; .ci/run installs both.
package interop
