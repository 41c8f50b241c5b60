module enginestore

go 1.19
