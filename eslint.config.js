// ESLint (flat config): typescript-eslint's recommended rules on every TypeScript file, checked by `npm test`.
// Formatting is Prettier's (.prettierrc.json); max-len catches what Prettier cannot wrap (long strings).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // Only our sources: not dependencies, run outputs, caches, the Helm chart or the docs. ESLint reads only
  // .js/.ts files; .prettierignore keeps json/yaml/md out of `prettier --check .` too.
  { ignores: ['node_modules/', 'runs/', '.cache/', 'tmp/', 'charts/', 'docs/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
    rules: {
      'max-len': ['error', { code: 120, ignoreUrls: true }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
    },
  },
);
