// Defaults the CLI needs before it loads the CA itself (which pulls in the
// X.509 and metrics libraries): kept free of imports so `meshward validate`
// does not pay for them.

export const DEFAULT_STATE_DIR = '.meshward/ca';
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
export const CA_KEY_TYPE_NAMES = ['ec-p256', 'rsa-2048', 'rsa-3072'] as const;
