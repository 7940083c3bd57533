module github.com/vtrace/vtrace

go 1.26.8

require (
	github.com/fatih/color v1.19.0
	github.com/go-delve/delve v1.27.2
	github.com/mattn/go-isatty v0.0.20
	golang.org/x/arch v0.32.0
	golang.org/x/sys v0.50.0
)

require github.com/mattn/go-colorable v0.1.14 // indirect
