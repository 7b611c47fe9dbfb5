"""The asset domain: upload URLs, confirmation, listing, status and deletion of media assets."""
