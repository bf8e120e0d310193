module github.com/shipline/examples/pr12er/server

go 1.19
