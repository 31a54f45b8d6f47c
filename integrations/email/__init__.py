"""The email channel: received mails read into console.mailtypes, and machines' mails told apart."""
