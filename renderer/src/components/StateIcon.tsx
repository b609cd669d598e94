import type { ApiState } from '../../../src/api/types.js';

/** A calm symbol per state, so the state never depends on colour alone. */
export function StateIcon({ state, size = 40 }: { state: ApiState; size?: number }) {
  const common = {
    width: size,
    height: size,
    viewBox: '0 0 40 40',
    'aria-hidden': true as const,
    className: 'state-icon',
  };
  switch (state) {
    case 'up-to-date':
      return (
        <svg {...common}>
          <circle cx="20" cy="20" r="18" />
          <path d="M11 20.5l6 6 12-13" className="glyph" />
        </svg>
      );
    case 'waiting':
      return (
        <svg {...common}>
          <circle cx="20" cy="20" r="18" />
          <path d="M20 10v10l7 4" className="glyph" />
        </svg>
      );
    case 'syncing':
      return (
        <svg {...common}>
          <circle cx="20" cy="20" r="18" />
          <path d="M12 17h14l-4-4M28 23H14l4 4" className="glyph" />
        </svg>
      );
    case 'paused':
      return (
        <svg {...common}>
          <circle cx="20" cy="20" r="18" />
          <path d="M16 12v16M24 12v16" className="glyph" />
        </svg>
      );
    case 'offline':
      return (
        <svg {...common}>
          <circle cx="20" cy="20" r="18" />
          <path d="M12 28L28 12M13 20a10 10 0 0 1 14 0M17 24a4 4 0 0 1 6 0" className="glyph" />
        </svg>
      );
    case 'needs-attention':
      return (
        <svg {...common}>
          <circle cx="20" cy="20" r="18" />
          <path d="M20 10v12M20 28v1" className="glyph" />
        </svg>
      );
  }
}
