package memcachestore

// idle is how many of the pool's slots are free.
func (p *pool) idle() int { return len(p.warm) + len(p.cold) }

// open is how many of the free slots have their connection open.
func (p *pool) open() int { return len(p.warm) }
