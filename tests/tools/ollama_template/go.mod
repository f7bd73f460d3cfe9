module amicus.test/ollamatemplate

go 1.19
