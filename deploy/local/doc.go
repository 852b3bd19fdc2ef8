// Package local is the one-machine proof that LocalLibrary scales out:
// three replicas of the production build behind nginx, sessions in three
// memcached servers, the catalog in MariaDB, every replica replaced one by
// one under continuous load, and the memcached tier resized from 3 to 4.
// It is all in proof_test.go; run it with ./proof.sh or
// `go -C deploy test -run Proof -v ./local/`.
package local
