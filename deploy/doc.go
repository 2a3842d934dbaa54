// Package deploy holds what an operator runs Natter with: NATS cluster configs
// (nats/), a local Cassandra node (cassandra/), the Dockerfile, a compose file and
// Kubernetes manifests (k8s/). It has no Go code; its tests validate those files
// against the schemas of the tools that read them (deploy_test.go), offline.
package deploy
