-- Where the sampled training documents of each FP token's repetition come from: documents per source,
-- and the source's share of that token's sample (matched controls: role = 'control').
SELECT model, token_text, n, variant, index_name, index_is_proxy, source, docs, sampled, round(share, 3) AS share
FROM source_shares
WHERE role = 'fp'
ORDER BY model, token_text, n, variant, share DESC, source;
