// node-postgres ships its certificate-signature reader (used for its own SCRAM-SHA-256-PLUS)
// without types: the one function scram.ts uses.
declare module 'pg/lib/crypto/cert-signatures.js' {
  /** The hash of a DER certificate's signature algorithm: 'SHA-256', 'SHA-384', 'SHA-1', 'MD5', ... */
  export function signatureAlgorithmHashFromCertificate(der: Buffer): string;
  const certSignatures: { signatureAlgorithmHashFromCertificate: typeof signatureAlgorithmHashFromCertificate };
  export default certSignatures;
}
