module kwex.dev/filters/polyglot/go

go 1.24
