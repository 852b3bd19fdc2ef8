// Package local is the one-machine proof that LocalLibrary scales out:
// three replicas of the production build behind nginx, sessions in three
// memcached servers, the catalog in MariaDB, every replica replaced one by
// one under continuous load, and the memcached tier resized from 3 to 4.
// The proof is proof_test.go, run with ./proof.sh or
// `go -C deploy test -run Proof -v ./local/`; readiness_test.go floods such a
// fleet with unknown ids and checks that every replica stays ready;
// poolcap_test.go checks that each replica keeps within its memcached pool
// cap under load; nodedeath_test.go kills memcached nodes under load, with
// the replicas' pools full (one restarted empty, one for good), and checks
// that no visit is lost or counted twice.
package local
