// Package wire holds the daemon API's wire types: the JSON objects of
// `drover serve`'s routes, shared by the server and the CLI's client so that the
// client does not import the server.
package wire
