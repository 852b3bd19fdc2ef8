// Package embedded runs the catalog on go-mysql-server, in process and in
// memory, for demos and tests that have no MySQL server. The engine is left
// out of production builds: build with -tags noembeddeddb and only DemoSeed
// remains here. Import this package only from files with the build
// constraint !noembeddeddb.
package embedded
